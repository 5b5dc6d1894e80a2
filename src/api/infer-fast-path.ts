/**
 * The hot path of inference routing: `POST /v2/models/<job>/infer` for a job whose route
 * is cached, taken from the raw HTTP server before Fastify sees the request.
 *
 * Why: proxying is all this path does, and on a machine whose cores are shared by the
 * client, the router and the worker, every microsecond of the router's CPU per request
 * is throughput lost. Fastify's request/reply objects, hooks and content-type dispatch
 * cost about as much as the proxying itself (BENCHMARKS.md, routing). This path does only
 * what a reverse proxy does: read a small body, send it to the worker in one write over
 * a keep-alive pool, and copy the answer back.
 *
 * Everything else is declined (returns false) and handled by the Fastify route with the
 * same outcome: an uncached job (lookup, on-demand load, 404/409), a body without a
 * Content-Length, larger than SMALL_BODY_BYTES (streamed there instead of buffered) or
 * over the body limit (413), `Expect: 100-continue`, a query string, a job whose server
 * does not accept the binary tensor extension (translated there), and a request
 * without a key that may infer (401/403). Errors become HTTP answers through the same
 * mapping as elsewhere.
 *
 * Each request counts on its route from the moment it takes it until its response is
 * closed (route-table.ts): an unload or a termination withdraws the route and waits for
 * that count to drain.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Lifecycle, RouteEntry } from '../lifecycle/lifecycle.js';
import type { Metrics } from '../observability/metrics.js';
import type { ByteBudget } from '../request-budget.js';
import { WORKER_ANSWER_TIMEOUT_MS, type WorkerClient } from '../runtime/worker-client.js';
import { endToEndHeaders } from '../end-to-end-headers.js';
import { answerError, answerWorkerFailure } from './worker-proxy.js';

/** Bodies up to this size are buffered and sent in one write; larger ones are streamed by the Fastify route. */
export const SMALL_BODY_BYTES = 64 * 1024;

const PREFIX = '/v2/models/';
const SUFFIX = '/infer';

export interface InferFastPathDeps {
  lifecycle: Pick<Lifecycle, 'tryAcquireRoute' | 'workerDidNotAnswer'> &
    Partial<Pick<Lifecycle, 'healLostModel' | 'invalidateRoute'>>;
  workers: Pick<WorkerClient, 'pool'>;
  metrics: Pick<Metrics, 'observeInference'>;
  bodyLimitBytes: number;
  /** The `Authorization` value may infer (auth.ts); a refusal is answered by the Fastify route (401/403). */
  admits: (authorization: string | undefined) => boolean;
  /** The inference request budget (request-budget.ts); a body that does not fit is the Fastify route's 429. */
  budget?: Pick<ByteBudget, 'tryTake' | 'release'>;
}

/** The job named by `/v2/models/<job>/infer`, or undefined for any other URL. */
export function inferJobOf(url: string): string | undefined {
  if (!url.startsWith(PREFIX) || !url.endsWith(SUFFIX)) return undefined;
  const job = url.slice(PREFIX.length, url.length - SUFFIX.length);
  // `%`: an encoded name is the Fastify route's business (it decodes); `/`, `?`: not this route.
  if (job.length === 0 || job.includes('/') || job.includes('?') || job.includes('%')) return undefined;
  return job;
}

/** Returns a handler that takes the request and answers it (true), or declines it (false). */
export function inferFastPath(
  deps: InferFastPathDeps,
): (request: IncomingMessage, response: ServerResponse) => boolean {
  const smallBody = Math.min(SMALL_BODY_BYTES, deps.bodyLimitBytes);
  return (request, response) => {
    if (request.method !== 'POST' || request.url === undefined) return false;
    const jobId = inferJobOf(request.url);
    if (jobId === undefined) return false;
    const length = Number(request.headers['content-length']);
    if (!(length >= 0 && length <= smallBody) || request.headers.expect !== undefined) return false;
    if (request.headers['transfer-encoding'] !== undefined) return false;
    if (!deps.admits(request.headers.authorization)) return false;
    if (deps.budget && !deps.budget.tryTake(length)) return false;
    const route = deps.lifecycle.tryAcquireRoute(jobId);
    // A server without the binary tensor extension: the Fastify route translates for it.
    if (!route || !route.binaryTensors) {
      route?.release();
      deps.budget?.release(length);
      return false;
    }
    if (deps.budget) response.once('close', () => deps.budget!.release(length));
    forward(deps, route, request, response, length);
    return true;
  };
}

function forward(
  deps: InferFastPathDeps,
  route: RouteEntry,
  request: IncomingMessage,
  response: ServerResponse,
  length: number,
): void {
  const started = performance.now();
  const chunks: Buffer[] = [];
  let handler: ProxyHandler | undefined;
  /**
   * The route the request counts on: the one it took, then the healed one it is sent
   * again on; undefined once the response closed and let it go. Each route taken is
   * released exactly once: by the close, or by the heal when it resolves after the close.
   */
  let held: RouteEntry | undefined = route;
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('error', () => response.destroy());
  // Closed once the answer is out or the connection is gone: either way the request no
  // longer counts on its route, and a client that left takes its upstream request along.
  response.once('close', () => {
    held?.release();
    held = undefined;
    if (!response.writableFinished) handler?.abort();
  });
  request.on('end', () => {
    if (held === undefined) return; // the client left before its body was complete
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
    const headers = endToEndHeaders(request.headers);
    // A worker without the model (404) gets it loaded again, then the body once more.
    const heal = deps.lifecycle.healLostModel?.bind(deps.lifecycle);
    const resend = (stale: RouteEntry) =>
      heal!(stale).then(
        (fresh) => {
          // healLostModel hands the fresh route over taken. A client that left during the
          // heal already let the stale route go with its close: the fresh one goes too.
          if (held === undefined) return fresh.release();
          held.release();
          held = fresh;
          if (!response.destroyed) send(fresh, false);
        },
        (error: unknown) => answerError(deps, stale.jobId, response, error, started),
      );
    // A replica whose worker did not answer at all (nothing sent to the client yet): its
    // route is dropped and the body goes, once, to another ready replica of the job.
    // Inference has no side effects, so sending it again is safe.
    let failedOver = false;
    const failover = (failed: RouteEntry): boolean => {
      if (failedOver || held !== failed || response.headersSent || !deps.lifecycle.invalidateRoute)
        return false;
      deps.lifecycle.invalidateRoute(failed);
      const other = deps.lifecycle.tryAcquireRoute(failed.jobId);
      if (!other) return false;
      if (other === failed) {
        other.release();
        return false;
      }
      failedOver = true;
      failed.release();
      held = other;
      send(other, false);
      return true;
    };
    const send = (target: RouteEntry, mayHeal: boolean) => {
      handler = new ProxyHandler(
        deps,
        target,
        response,
        started,
        mayHeal && heal ? resend : undefined,
        failover,
      );
      deps.workers.pool(target.endpoint).dispatch(
        {
          method: 'POST',
          path: `${target.modelPath}${SUFFIX}`,
          headers,
          body,
          headersTimeout: WORKER_ANSWER_TIMEOUT_MS,
          bodyTimeout: WORKER_ANSWER_TIMEOUT_MS,
        },
        handler,
      );
    };
    send(route, true);
  });
}

/** Copies the worker's answer into the client's response as it arrives. */
class ProxyHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private statusCode = 502;
  /** The client went away: the upstream request is cancelled, and that says nothing about the worker. */
  private clientGone = false;
  /** The worker answered 404 (model not loaded): its answer is dropped, onNotLoaded runs at its end. */
  private notLoaded = false;

  constructor(
    private readonly deps: InferFastPathDeps,
    private readonly route: RouteEntry,
    private readonly response: ServerResponse,
    private readonly started: number,
    private readonly onNotLoaded?: (stale: RouteEntry) => void,
    /** The worker did not answer: true when the request was sent to another replica instead. */
    private readonly onUnanswered?: (failed: RouteEntry) => boolean,
  ) {}

  abort(): void {
    this.clientGone = true;
    this.controller?.abort(new Error('client closed the connection'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode === 404 && this.onNotLoaded) {
      this.notLoaded = true;
      return;
    }
    this.statusCode = statusCode;
    this.response.writeHead(statusCode, endToEndHeaders(headers));
    // Backpressure: a slow client pauses the worker's socket instead of growing our buffers.
    this.response.on('drain', () => controller.resume());
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.notLoaded) return;
    if (!this.response.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    if (this.notLoaded) return this.onNotLoaded!(this.route);
    this.response.end();
    this.deps.metrics.observeInference(
      this.route.jobId,
      this.statusCode,
      (performance.now() - this.started) / 1000,
    );
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.clientGone) return;
    if (this.onUnanswered?.(this.route)) return;
    answerWorkerFailure(this.deps, this.route, this.response, error, this.started);
  }
}
