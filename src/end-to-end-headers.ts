/**
 * The headers a proxy passes on: shared by the router's proxies to workers
 * (api/worker-proxy.ts) and the guard in front of a foreign server (worker/guard.ts).
 *
 * Hop-by-hop headers are the proxy's own business (RFC 9110 §7.6.1): the fixed list, the
 * fields the Connection header names, Expect (answered by the router, expect-continue.ts)
 * and the client's proxy credentials; the worker's secret is the router's to send, never
 * a client's, and never passed beyond the guard that checks it. Content-Length is kept:
 * bodies pass through unchanged, and a known length spares both hops chunking.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { WORKER_SECRET_HEADER } from './worker-secret.js';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'host',
  'expect',
  WORKER_SECRET_HEADER,
  // The caller's API key is the router's business; a worker never sees it.
  'authorization',
]);

/** The field names a Connection header lists, beyond its usual `keep-alive` / `close`. */
function connectionTokens(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') return undefined;
  const text = Array.isArray(connection) ? connection.join(',') : connection;
  return new Set(text.split(',').map((token) => token.trim().toLowerCase()));
}

/** The end-to-end headers of a request or response, as a plain object for the next hop. */
export function endToEndHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  const named = connectionTokens(headers.connection);
  for (const key in headers) {
    const value = headers[key];
    if (value === undefined || HOP_BY_HOP.has(key) || named?.has(key)) continue;
    out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
