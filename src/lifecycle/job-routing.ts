/**
 * Inference routing: which worker a request for a job goes to, and what it waits for
 * when the job is not ready. A request takes one of the job's ready replicas (power of
 * two choices on in-flight requests, route-table.ts). A job being loaded, unloaded or
 * restarted is waited for; an unloaded job is loaded on demand (one DEPLOY_LOAD with
 * reason `on_demand` for all the requests that wait); a job scaled to zero starts a
 * replica (`scale_from_zero`), which its requests wait for, never failing for being
 * cold; a worker that lost its model is healed. HTTP and gRPC share it.
 */
import {
  ConflictError,
  NotFoundError,
  NotReadyError,
  RuntimeUnavailableError,
  WorkerError,
  errorMessage,
} from '../errors.js';
import { validateId } from '../ids.js';
import type { ServerRecord } from '../store/records.js';
import { isScaledToZero, liveServers, requireJob } from './job-requests.js';
import type { LifecycleContext } from './lifecycle-context.js';
import { deployLoadLocked, loadReplicaLocked } from './operations/deploy-load.js';
import { scaleFromZeroLocked } from './operations/scale.js';
import { RouteEntry, type Route } from './route-table.js';

export class JobRouting {
  /** Route look-ups under way, one per job: concurrent requests for a cold job share one load. */
  private readonly lookups = new Map<string, Promise<RouteEntry>>();
  /** Jobs whose worker died and which the reconciler is restarting: look-ups wait for it. */
  private readonly restarts = new Map<string, Promise<void>>();
  /** Requests waiting for a route, per job: demand the autoscaler counts. */
  private readonly waitingRequests = new Map<string, number>();

  constructor(private readonly ctx: LifecycleContext) {}

  /** Requests of the job waiting for a route now. */
  waiting(jobId: string): number {
    return this.waitingRequests.get(jobId) ?? 0;
  }

  /**
   * The route of a job whose server is ready, taken by one request (counted until it
   * calls `release()`), without touching the store or waiting: the hot path of
   * inference. Undefined means "ask acquire()", which may wait for a load.
   */
  tryAcquire(jobId: string): RouteEntry | undefined {
    return this.ctx.routes.acquire(jobId);
  }

  /**
   * The route for one inference request, counted until the caller calls `release()` on
   * it. Past MODELDOCK_LOAD_WAIT_MS: NotReadyError (503 with Retry-After). A terminated
   * or unknown job: NotFoundError; a failed one: ConflictError.
   */
  async acquire(jobId: string): Promise<RouteEntry> {
    const cached = this.ctx.routes.acquire(jobId);
    if (cached) return cached;
    validateId('job_id', jobId);
    const waitMs = this.ctx.deps.options.loadWaitMs ?? 60_000;
    const deadline = Date.now() + waitMs;
    this.waitingRequests.set(jobId, this.waiting(jobId) + 1);
    try {
      for (;;) {
        const entry = await withDeadline(this.lookup(jobId), deadline, () => {
          const seconds = Math.max(1, Math.ceil(waitMs / 1000));
          return new NotReadyError(
            `job ${jobId} is not ready yet (its server is still being loaded after ${waitMs} ms); retry later`,
            seconds,
          );
        });
        // Every waiter balanced over the replicas there are now, not all sent to the one found.
        const balanced = this.ctx.routes.acquire(jobId);
        if (balanced) return balanced;
        // Withdrawn between the look-up and now (an unload came first): look again.
        if (!entry.withdrawn) return entry.acquire();
      }
    } finally {
      const left = this.waiting(jobId) - 1;
      if (left > 0) this.waitingRequests.set(jobId, left);
      else this.waitingRequests.delete(jobId);
    }
  }

  /** Inference through the router with a parsed body (the /v2 proxy streams instead). */
  async infer(jobId: string, body: unknown): Promise<unknown> {
    const { workers } = this.ctx.deps;
    let route = await this.acquire(jobId);
    try {
      try {
        return await workers.infer(route.endpoint, route.modelName, body);
      } catch (error) {
        if (error instanceof WorkerError) this.workerDidNotAnswer(route, error);
        if (!(error instanceof NotFoundError)) throw error;
        // The worker does not have the model the router holds as ready: heal, then once more.
        const healed = await this.healLostModel(route);
        route.release();
        route = healed;
        return await workers.infer(healed.endpoint, healed.modelName, body);
      }
    } finally {
      route.release();
    }
  }

  /**
   * A worker answered "not loaded" on a route the router holds as ready (something
   * unloaded it behind the router's back, or the worker lost it): that replica's route is
   * dropped and the server healed at once under the job's lock (a DEPLOY_LOAD of that
   * replica with reason `worker_lost_model`, which finds the model missing and loads it).
   * Resolves with the fresh route, taken (the caller sends its request again on it and
   * releases it); concurrent callers share one heal.
   */
  async healLostModel(stale: RouteEntry): Promise<RouteEntry> {
    const { ctx } = this;
    const { jobId, serverId } = stale;
    if (ctx.routes.forServer(jobId, serverId) === stale) ctx.routes.withdrawServer(jobId, serverId);
    const fresh = await ctx.locks.run(jobId, async () => {
      const current = ctx.routes.forServer(jobId, serverId);
      if (current) return current;
      const job = await requireJob(ctx.deps, jobId);
      const server = await ctx.deps.store.getServer(serverId);
      const request = { jobId, model: job.model, dataset: job.dataset };
      if (!server || server.state === 'terminated') {
        // The replica is gone (scaled down meanwhile): any other of the job's routes does.
        return (
          ctx.routes.pick(jobId) ??
          this.routeLocked(jobId).then((found) => {
            if (found instanceof RouteEntry) return found;
            throw new NotReadyError(`job ${jobId} is not ready yet; retry later`, 1);
          })
        );
      }
      const outcome = await loadReplicaLocked(ctx, request, server, 'worker_lost_model');
      return ctx.routes.forServer(jobId, serverId) ?? (await ctx.servers.openRoute(outcome.server!));
    });
    return fresh.acquire();
  }

  /**
   * Drop a replica's route after its worker did not answer: requests go to the job's
   * other replicas, or look the job up again when it had no other.
   */
  invalidate(route: Pick<Route, 'jobId' | 'serverId'>): void {
    this.ctx.routes.withdrawServer(route.jobId, route.serverId);
  }

  /**
   * A request's worker did not answer (the request gets 502): said in the log with the
   * job, server and reason, and the route dropped, so the next request looks it up again.
   */
  workerDidNotAnswer(route: Pick<RouteEntry, 'jobId' | 'serverId'>, error: unknown): void {
    this.ctx.deps.logger.warn(
      { jobId: route.jobId, serverId: route.serverId, err: errorMessage(error) },
      'worker did not answer; the request got 502',
    );
    this.invalidate(route);
  }

  /**
   * The reconciler is about to restart the job's dead worker: look-ups wait for the
   * restart instead of answering "failed". Call the returned function once it is over.
   */
  restartPending(jobId: string): () => void {
    let done!: () => void;
    const restart = new Promise<void>((resolve) => (done = resolve));
    this.restarts.set(jobId, restart);
    return () => {
      if (this.restarts.get(jobId) === restart) this.restarts.delete(jobId);
      done();
    };
  }

  /** One look-up per job at a time, shared by every request that waits for it. */
  private lookup(jobId: string): Promise<RouteEntry> {
    let pending = this.lookups.get(jobId);
    if (!pending) {
      const started = this.resolveRoute(jobId).finally(() => {
        if (this.lookups.get(jobId) === started) this.lookups.delete(jobId);
      });
      pending = started;
      this.lookups.set(jobId, pending);
    }
    return pending;
  }

  private async resolveRoute(jobId: string): Promise<RouteEntry> {
    for (;;) {
      const found = await this.ctx.locks.run(jobId, () => this.routeLocked(jobId));
      if (found instanceof RouteEntry) return found;
      await found.wait;
    }
  }

  /**
   * Under the job's lock: a route, after opening the routes of the job's ready replicas
   * that answer (a router that restarted adopts them here), loading the model on demand,
   * or starting a job scaled to zero; or something to wait for before looking again (a
   * restart, a worker that stopped answering and that the reconciler is about to notice).
   */
  private async routeLocked(jobId: string): Promise<RouteEntry | { wait: Promise<unknown> }> {
    const { ctx } = this;
    const again = ctx.routes.pick(jobId);
    if (again) return again;
    const job = await requireJob(ctx.deps, jobId);
    const live = await liveServers(ctx.deps, jobId);
    const request = { jobId, model: job.model, dataset: job.dataset };
    if (isScaledToZero(job, live)) {
      await scaleFromZeroLocked(ctx, job, request, 'scale_from_zero');
      return ctx.routes.pick(jobId) ?? { wait: Promise.resolve() };
    }
    if (live.length === 0) {
      const server = await ctx.deps.store.currentServer(jobId);
      throw new NotFoundError(
        server
          ? `job ${jobId} is terminated (server ${server.serverId}${server.terminatedAt ? ` since ${server.terminatedAt}` : ''}); it serves no inference until a DEPLOY_CREATE`
          : `job ${jobId} has no server; send DEPLOY_CREATE`,
      );
    }
    const ready = live.filter((server) => server.state === 'ready' && server.endpoint);
    if (ready.length > 0) {
      const answering = await Promise.all(ready.map((server) => this.answers(server)));
      for (const [i, server] of ready.entries()) {
        if (answering[i] && !ctx.routes.forServer(jobId, server.serverId))
          await ctx.servers.openRoute(server);
      }
      const found = ctx.routes.pick(jobId);
      if (found) return found;
      // Ready servers without a route whose workers do not answer: they have just died
      // (a request saw them fail), and the reconciler is about to mark and restart them.
      // Wait for its word rather than send more requests to a dead worker.
      return { wait: this.nextServerChange(ready[0]!.serverId) };
    }
    if (live.every((server) => server.state === 'failed')) {
      const restart = this.restarts.get(jobId);
      if (restart) return { wait: restart };
      const server = live[0]!;
      throw new ConflictError(
        `server ${server.serverId} of job ${jobId} has failed (${server.reason ?? 'unknown reason'}); send DEPLOY_LOAD to recover it`,
      );
    }
    const started = performance.now();
    const outcome = await deployLoadLocked(ctx, request, 'on_demand');
    ctx.deps.metrics.coldLoadDuration.observe(
      { placement: outcome.server?.placement ?? 'dedicated' },
      (performance.now() - started) / 1000,
    );
    return ctx.routes.pick(jobId) ?? (await ctx.servers.openRoute(outcome.server!));
  }

  /**
   * Whether a ready server's worker runs and answers its API (briefly asked: this runs
   * under the job's lock). Without an engine to ask, the record is all there is: it
   * counts as answering, as it did before.
   */
  private async answers(server: ServerRecord): Promise<boolean> {
    const { runtime, workers } = this.ctx.deps;
    try {
      const info = await runtime.inspect(server.workerName);
      if (!info?.running || info.endpoint !== server.endpoint) return false;
    } catch (error) {
      if (error instanceof RuntimeUnavailableError) return true;
      throw error;
    }
    try {
      await workers.index(server.endpoint!, AbortSignal.timeout(2_000));
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves at the next state change of a server (or after a second, to look again anyway). */
  private nextServerChange(serverId: string): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      };
      const timer = setTimeout(finish, 1_000);
      const unsubscribe = this.ctx.deps.events.subscribe((event) => {
        if (event.type === 'server' && event.server.serverId === serverId) finish();
      });
    });
  }
}

/** `work`, or `timeout()` thrown once `deadline` (ms since the epoch) has passed; `work` goes on. */
async function withDeadline<T>(work: Promise<T>, deadline: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
