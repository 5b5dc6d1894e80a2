/**
 * What both ways of proxying inference to a worker share (the hot path in
 * infer-fast-path.ts and the streaming `/v2` route): what happens when the worker does not
 * answer. Which headers pass is end-to-end-headers.ts (shared with the worker's guard).
 */
import type { ServerResponse } from 'node:http';
import { WorkerError, errorMessage } from '../errors.js';
import type { Lifecycle, RouteEntry } from '../lifecycle/lifecycle.js';
import type { Metrics } from '../observability/metrics.js';
import { toProtocolErrorResponse } from './error-mapping.js';

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
