/**
 * What both ways of proxying inference to a worker share (the hot path in
 * infer-fast-path.ts and the streaming `/v2` route): which headers pass, and what happens
 * when the worker does not answer.
 *
 * Hop-by-hop headers are the proxy's own business (RFC 9110 §7.6.1): the fixed list, the
 * fields the Connection header names, Expect (answered by the router, expect-continue.ts)
 * and the client's proxy credentials; the worker's secret is the router's to send, never
 * a client's. Content-Length is kept: bodies pass through unchanged, and a known length
 * spares both hops chunking.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { WorkerError, errorMessage } from '../errors.js';
import type { Lifecycle, RouteEntry } from '../lifecycle/lifecycle.js';
import type { Metrics } from '../observability/metrics.js';
import { WORKER_SECRET_HEADER } from '../worker-secret.js';
import { toProtocolErrorResponse } from './error-mapping.js';

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

export interface WorkerFailureDeps {
  lifecycle: Pick<Lifecycle, 'workerDidNotAnswer'>;
  metrics: Pick<Metrics, 'observeInference'>;
}

/**
 * The job's worker did not answer, or broke off: it is logged, the next request looks the
 * route up again, the request counts as a 502, and the client gets the protocol's JSON error, or a
 * cut connection when part of the answer has already gone out.
 */
export function answerWorkerFailure(
  deps: WorkerFailureDeps,
  route: Pick<RouteEntry, 'jobId' | 'serverId'>,
  response: ServerResponse,
  error: unknown,
  startedMs: number,
): void {
  const { jobId } = route;
  deps.lifecycle.workerDidNotAnswer(route, error);
  deps.metrics.observeInference(jobId, 502, (performance.now() - startedMs) / 1000);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  // Both proxies serve /v2: the protocol's error form.
  const { status, body } = toProtocolErrorResponse(
    new WorkerError(`worker of job ${jobId} did not answer: ${errorMessage(error)}`, { cause: error }),
  );
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify(body));
}

/** An error that is not the worker's (e.g. healing a lost model failed): its answer in the protocol's form. */
export function answerError(
  deps: WorkerFailureDeps,
  jobId: string,
  response: ServerResponse,
  error: unknown,
  startedMs: number,
): void {
  const { status, body } = toProtocolErrorResponse(error);
  deps.metrics.observeInference(jobId, status, (performance.now() - startedMs) / 1000);
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify(body));
}
