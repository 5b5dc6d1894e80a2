import type { ApiClient } from '../client/api-client.js';
import type { Output } from '../client/output.js';

/** What every client command gets: the router's API, the output, and Ctrl-C as a signal. */
export interface CommandContext {
  api: ApiClient;
  out: Output;
  signal: AbortSignal;
}
