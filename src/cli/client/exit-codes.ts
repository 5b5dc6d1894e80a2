/**
 * The exit codes of the client commands (docs/cli.md lists them), so scripts can tell
 * "the router said no" from "there is no router" without parsing messages.
 */
export const EXIT = {
  ok: 0,
  /** An operation ran and failed, or something unexpected happened. */
  failed: 1,
  /** The command line is wrong (unknown command or option, missing argument). */
  usage: 2,
  /** No router answered at --url. */
  unreachable: 3,
  /** The router wants a (different) API key: 401 or 403. */
  unauthorized: 4,
  /** What was asked for does not exist: 404. */
  notFound: 5,
  /** The router refused the request: bad input or a conflicting state (400, 409, 413, 415). */
  rejected: 6,
  /** The router or what it drives failed: 5xx (runtime or store unavailable, worker error). */
  serverError: 7,
} as const;

export function exitCodeForStatus(status: number): number {
  if (status === 401 || status === 403) return EXIT.unauthorized;
  if (status === 404) return EXIT.notFound;
  if (status >= 500) return EXIT.serverError;
  if (status >= 400) return EXIT.rejected;
  return EXIT.failed;
}
