/**
 * Which headers a proxy passes on. Hop-by-hop headers are the proxy's own business
 * (RFC 9110 §7.6.1); Content-Length is kept: bodies pass through unchanged, and a known
 * length spares both hops chunking.
 */
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'host',
]);

/** The end-to-end headers of a request or response, as a plain object for the next hop. */
export function endToEndHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key in headers) {
    const value = headers[key];
    if (value === undefined || HOP_BY_HOP.has(key)) continue;
    out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
