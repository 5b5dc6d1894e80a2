/**
 * The lifecycle of inference servers: the original five operations plus inference
 * routing. Every operation is serialized per job (different jobs run in parallel),
 * idempotent, and recorded (intent first, then each step, then the outcome).
 *
 * The store says what should exist, the runtime what does; operations converge the
 * runtime to the requested state from whatever state they find, which is also how a
 * server whose container vanished or crashed heals on the next DEPLOY_LOAD.
 */
import type { Logger } from 'pino';
import {
  ConflictError,
  ModeldockError,
  NotFoundError,
  NotReadyError,
  RuntimeUnavailableError,
  StoreUnavailableError,
  WorkerError,
  errorMessage,
} from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { LABELS, type Runtime, type WorkerInfo, type WorkerLimits } from '../runtime/runtime.js';
import type { BatchResult, WorkerClient } from '../runtime/worker-client.js';
import type {
  JobRecord,
  OperationRecord,
  OperationType,
  ServerKind,
  ServerRecord,
  ServerState,
} from '../store/records.js';
import { formatServerId } from '../store/server-id.js';
import type { ServerPatch, Store } from '../store/store.js';
import type { Catalog } from './catalog.js';
import type { EventBus } from './event-bus.js';
import { validateId } from '../ids.js';
import { KeyedMutex } from './keyed-mutex.js';
import { RouteEntry, RouteTable } from './route-table.js';
import { MemoryPolicy } from './memory-policy.js';
import { WarmPool } from './warm-pool.js';
import { workerSpec } from './worker-spec.js';
import { OperationRecorder, newOperationId } from './operation-recorder.js';
import { canTransition } from './state-machine.js';

export interface JobRequest {
  jobId: string;
  model: string;
  dataset: string;
  /** From the original payload: never trusted, only compared and reported. */
  containerId?: string | null;
}

export interface TempRequest extends JobRequest {
  /** Open Inference Protocol request body; without it TEMP runs over the whole dataset. */
  inputs?: unknown;
}

export interface OperationOutcome {
  operation: OperationRecord;
  server: ServerRecord | null;
  /** TEMP: the batch result or the inference response. */
  result?: BatchResult | unknown;
}

export type { Route, RouteEntry } from './route-table.js';

export interface LifecycleOptions {
  instance: string;
  idleUnloadMs?: number;
  maxLoadedModels?: number;
  memoryBudgetBytes?: number;
  /** Started, model-less workers kept ready for DEPLOY_CREATE and TEMP; 0: off. */
  warmPoolSize?: number;
  readyTimeoutMs: number;
  workerLimits: WorkerLimits;
  stopTimeoutSeconds?: number;
  /** How long an unload or a termination waits for requests under way on the job's route. */
  drainTimeoutMs?: number;
  /** How long an inference request waits for its job's server to be ready before a 503. */
  loadWaitMs?: number;
}

export interface LifecycleDeps {
  store: Store;
  runtime: Runtime;
  workers: WorkerClient;
  catalog: Catalog;
  metrics: Metrics;
  events: EventBus;
  logger: Logger;
  options: LifecycleOptions;
}

/** An operation failed after it was recorded: the error plus the record that says so. */
export class OperationFailedError extends ModeldockError {
  constructor(
    readonly original: ModeldockError,
    readonly operation: OperationRecord,
  ) {
    super(original.code, original.message, {
      cause: original,
      details: { ...original.details, operation_id: operation.operationId },
    });
  }
}

export class Lifecycle {
  private readonly locks = new KeyedMutex();
  private readonly routes = new RouteTable();
  /** Route look-ups under way, one per job: concurrent requests for a cold job share one load. */
  private readonly lookups = new Map<string, Promise<RouteEntry>>();
  /** Jobs whose worker died and which the reconciler is restarting: look-ups wait for it. */
  private readonly restarts = new Map<string, Promise<void>>();
  /** Last use of jobs whose route is gone (the route itself keeps it while it exists). */
  private readonly lastUsed = new Map<string, number>();
  /** Operations this process is running; a `running` record not in here was interrupted. */
  readonly activeOperations = new Set<string>();

  readonly memoryPolicy: MemoryPolicy;
  readonly pool: WarmPool;

  constructor(private readonly deps: LifecycleDeps) {
    this.pool = new WarmPool(
      deps.runtime,
      deps.workers,
      {
        size: deps.options.warmPoolSize ?? 0,
        instance: deps.options.instance,
        limits: deps.options.workerLimits,
        readyTimeoutMs: deps.options.readyTimeoutMs,
        memoryForPool: () => this.memoryPolicy.bytesLeftForPool(),
      },
      deps.logger,
    );
    this.memoryPolicy = new MemoryPolicy(
      deps.store,
      {
        deployUnload: (request, reason) => this.deployUnload(request, reason),
        lastUsedAt: (jobId) => this.lastUsedAt(jobId),
        isJobBusy: (jobId) => this.locks.isBusy(jobId),
      },
      {
        idleUnloadMs: deps.options.idleUnloadMs ?? 0,
        maxLoadedModels: deps.options.maxLoadedModels ?? 0,
        memoryBudgetBytes: deps.options.memoryBudgetBytes ?? 0,
        modelBytes: (model) => deps.catalog.modelBytes(model),
        releasable: this.pool,
      },
      deps.logger,
    );
  }

  // ---------------------------------------------------------------- operations

  async deployCreate(request: JobRequest, reason = 'request'): Promise<OperationOutcome> {
    await this.validateRequest(request);
    return this.locks.run(request.jobId, async () => {
      const job = await this.deps.store.getJob(request.jobId);
      const server = await this.liveServer(request.jobId);
      if (job && server) this.assertSameJob(job, request);
      return this.runOperation('DEPLOY_CREATE', request, server, reason, async (rec) => {
        if (!job) await this.deps.store.ensureJob(request);
        else if (!server && (job.model !== request.model || job.dataset !== request.dataset)) {
          // The job's old server is gone; a new create may serve another model.
          await this.deps.store.updateJob(request.jobId, { model: request.model, dataset: request.dataset });
        }
        let current = server;
        if (current?.state === 'ready' && (await this.isServing(current))) {
          rec.warn(`job ${request.jobId} already has a ready server (${current.serverId}); nothing to do`);
          return { server: current };
        }
        current ??= await this.newServer(rec, request, 'job');
        return { server: await this.bringUp(rec, current) };
      });
    });
  }

  async deployLoad(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    const full = await this.resolveRequest(request);
    return this.locks.run(full.jobId, () => this.deployLoadLocked(full, reason));
  }

  async deployUnload(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    const full = await this.resolveRequest(request);
    return this.locks.run(full.jobId, async () => {
      const server = await this.requireLiveServer(full.jobId);
      if (server.state === 'failed') {
        throw new ConflictError(
          `server ${server.serverId} of job ${full.jobId} has failed (${server.reason ?? 'unknown reason'}); send DEPLOY_LOAD to recover it`,
        );
      }
      return this.runOperation('DEPLOY_UNLOAD', full, server, reason, async (rec) => {
        if (server.state === 'unloaded') {
          rec.warn(`server ${server.serverId} is already unloaded; nothing to do`);
          return { server };
        }
        return { server: await this.unloadServer(rec, server, reason) };
      });
    });
  }

  async terminate(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    const full = await this.resolveRequest(request);
    return this.locks.run(full.jobId, async () => {
      const server = await this.liveServer(full.jobId);
      return this.runOperation('TERMINATE', full, server, reason, async (rec) => {
        if (!server) {
          const last = await this.deps.store.currentServer(full.jobId);
          rec.warn(`job ${full.jobId} has no live server; nothing to terminate`);
          return { server: last ?? null };
        }
        return { server: await this.terminateServer(rec, server, reason) };
      });
    });
  }

  /** One-shot: create, load, infer over the dataset (or the given inputs), always remove. */
  async temp(request: TempRequest, reason = 'request'): Promise<OperationOutcome> {
    await this.validateRequest(request);
    return this.locks.run(request.jobId, async () => {
      const server = await this.liveServer(request.jobId);
      return this.runOperation('TEMP', request, server, reason, async (rec) => {
        let temp = await this.newServer(rec, request, 'temp');
        let result: unknown;
        try {
          temp = await this.bringUp(rec, temp);
          const endpoint = temp.endpoint!;
          result = await rec.step('infer', () =>
            request.inputs === undefined
              ? this.deps.workers.batch(endpoint, request.jobId, request.dataset)
              : this.deps.workers.infer(endpoint, request.jobId, request.inputs),
          );
        } finally {
          // Deleted even on failure: a TEMP server never outlives its operation.
          const latest = (await this.deps.store.getServer(temp.serverId).catch(() => undefined)) ?? temp;
          temp = await this.terminateServer(rec, latest, 'temp_done');
        }
        return { server: temp, result };
      });
    });
  }

  // ---------------------------------------------------------------- routing

  /**
   * The route of a job whose server is ready, taken by one request (counted until it
   * calls `release()`), without touching the store or waiting: the hot path of
   * inference. Undefined means "ask acquireRoute()", which may wait for a load.
   */
  tryAcquireRoute(jobId: string): RouteEntry | undefined {
    return this.routes.acquire(jobId);
  }

  /**
   * The route for one inference request (HTTP or gRPC), counted until the caller calls
   * `release()` on it. A job being loaded, unloaded or restarted is waited for, and an
   * unloaded server is loaded on demand (a DEPLOY_LOAD with reason `on_demand`; one for
   * all the requests that wait). Past MODELDOCK_LOAD_WAIT_MS: NotReadyError (503 with
   * Retry-After). A terminated or unknown job: NotFoundError; a failed one: ConflictError.
   */
  async acquireRoute(jobId: string): Promise<RouteEntry> {
    const cached = this.routes.acquire(jobId);
    if (cached) return cached;
    validateId('job_id', jobId);
    const waitMs = this.deps.options.loadWaitMs ?? 60_000;
    const deadline = Date.now() + waitMs;
    for (;;) {
      const entry = await withDeadline(this.lookup(jobId), deadline, () => {
        const seconds = Math.max(1, Math.ceil(waitMs / 1000));
        return new NotReadyError(
          `job ${jobId} is not ready yet (its server is still being loaded after ${waitMs} ms); retry later`,
          seconds,
        );
      });
      // Withdrawn between the look-up and now (an unload came first): look again.
      if (!entry.withdrawn) return entry.acquire();
    }
  }

  /** Inference through the router with a parsed body (the /v2 proxy streams instead). */
  async infer(jobId: string, body: unknown): Promise<unknown> {
    let route = await this.acquireRoute(jobId);
    try {
      try {
        return await this.deps.workers.infer(route.endpoint, route.modelName, body);
      } catch (error) {
        if (error instanceof WorkerError) this.invalidateRoute(jobId);
        if (!(error instanceof NotFoundError)) throw error;
        // The worker does not have the model the router holds as ready: heal, then once more.
        const healed = await this.healLostModel(route);
        route.release();
        route = healed;
        return await this.deps.workers.infer(healed.endpoint, healed.modelName, body);
      }
    } finally {
      route.release();
    }
  }

  /**
   * A worker answered "not loaded" on a route the router holds as ready (something
   * unloaded it behind the router's back, or the worker lost it): the route is dropped and
   * the server healed at once under the job's lock (a DEPLOY_LOAD with reason
   * `worker_lost_model`, which finds the model missing and loads it). Resolves with the
   * fresh route, taken (the caller sends its request again on it and releases it);
   * concurrent callers share one heal.
   */
  async healLostModel(stale: RouteEntry): Promise<RouteEntry> {
    const { jobId } = stale;
    if (this.routes.get(jobId) === stale) this.forgetRoute(jobId);
    const fresh = await this.locks.run(jobId, async () => {
      const current = this.routes.get(jobId);
      if (current) return current;
      const job = await this.requireJob(jobId);
      const request = { jobId, model: job.model, dataset: job.dataset };
      const outcome = await this.deployLoadLocked(request, 'worker_lost_model');
      return this.cacheRoute(outcome.server!);
    });
    return fresh.acquire();
  }

  /** Drop the route after the worker did not answer: the next request looks it up again. */
  invalidateRoute(jobId: string): void {
    this.forgetRoute(jobId);
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

  lastUsedAt(jobId: string): number | undefined {
    return this.routes.get(jobId)?.lastUsedMs ?? this.lastUsed.get(jobId);
  }

  /** Run work under the job's lock (the reconciler uses this so it never races an operation). */
  withJobLock<T>(jobId: string, work: () => Promise<T>): Promise<T> {
    return this.locks.run(jobId, work);
  }

  // ---------------------------------------------------------------- reads

  async getJob(jobId: string): Promise<{ job: JobRecord; server: ServerRecord | null }> {
    validateId('job_id', jobId);
    const job = await this.requireJob(jobId);
    return { job, server: (await this.deps.store.currentServer(jobId)) ?? null };
  }

  // ---------------------------------------------------------------- internals

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
      const found = await this.locks.run(jobId, () => this.routeLocked(jobId));
      if (found instanceof RouteEntry) return found;
      await found.wait;
    }
  }

  /**
   * Under the job's lock: the route, after loading the model on demand if needed; or
   * something to wait for before looking again (a restart, a worker that stopped
   * answering and that the reconciler is about to notice).
   */
  private async routeLocked(jobId: string): Promise<RouteEntry | { wait: Promise<unknown> }> {
    const again = this.routes.get(jobId);
    if (again) return again;
    await this.requireJob(jobId);
    let server = await this.deps.store.currentServer(jobId);
    if (!server || server.state === 'terminated') {
      throw new NotFoundError(
        server
          ? `job ${jobId} is terminated (server ${server.serverId}${server.terminatedAt ? ` since ${server.terminatedAt}` : ''}); it serves no inference until a DEPLOY_CREATE`
          : `job ${jobId} has no server; send DEPLOY_CREATE`,
      );
    }
    if (server.state === 'failed') {
      const restart = this.restarts.get(jobId);
      if (restart) return { wait: restart };
      throw new ConflictError(
        `server ${server.serverId} of job ${jobId} has failed (${server.reason ?? 'unknown reason'}); send DEPLOY_LOAD to recover it`,
      );
    }
    if (server.state === 'ready' && server.endpoint && !(await this.answers(server))) {
      // A ready server without a route whose worker does not answer: it has just died
      // (a request saw it fail), and the reconciler is about to mark it and restart it.
      // Wait for its word rather than send more requests to a dead worker.
      return { wait: this.nextServerChange(server.serverId) };
    }
    if (server.state !== 'ready' || !server.endpoint) {
      const job = await this.requireJob(jobId);
      const outcome = await this.deployLoadLocked(
        { jobId, model: job.model, dataset: job.dataset },
        'on_demand',
      );
      server = outcome.server!;
    }
    return this.routes.get(jobId) ?? this.cacheRoute(server);
  }

  /**
   * Whether a ready server's worker runs and answers its API (briefly asked: this runs
   * under the job's lock). Without an engine to ask, the record is all there is: it
   * counts as answering, as it did before.
   */
  private async answers(server: ServerRecord): Promise<boolean> {
    try {
      const info = await this.deps.runtime.inspect(server.workerName);
      if (!info?.running || info.endpoint !== server.endpoint) return false;
    } catch (error) {
      if (error instanceof RuntimeUnavailableError) return true;
      throw error;
    }
    try {
      await this.deps.workers.index(server.endpoint!, AbortSignal.timeout(2_000));
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
      const unsubscribe = this.deps.events.subscribe((event) => {
        if (event.type === 'server' && event.server.serverId === serverId) finish();
      });
    });
  }

  /**
   * Let the requests under way on a withdrawn route finish (bounded by the drain
   * timeout), recorded as the operation's `drain` step.
   */
  private async drainWithdrawn(rec: OperationRecorder, entry: RouteEntry | undefined): Promise<void> {
    const timeoutMs = this.deps.options.drainTimeoutMs ?? 30_000;
    await rec.step('drain', async () => {
      const left = (await entry?.drain(timeoutMs)) ?? 0;
      if (left > 0) {
        rec.warn(
          `${left} inference request${left === 1 ? ' was' : 's were'} still in flight after the ${timeoutMs} ms drain timeout`,
        );
      }
    });
  }

  private forgetRoute(jobId: string): RouteEntry | undefined {
    const entry = this.routes.withdraw(jobId);
    if (entry) this.lastUsed.set(jobId, entry.lastUsedMs);
    return entry;
  }

  private async deployLoadLocked(request: JobRequest, reason: string): Promise<OperationOutcome> {
    const server = await this.requireLiveServer(request.jobId);
    return this.runOperation('DEPLOY_LOAD', request, server, reason, async (rec) => {
      if (server.state === 'ready' && (await this.isServing(server))) {
        rec.warn(`server ${server.serverId} is already loaded; nothing to do`);
        return { server };
      }
      return { server: await this.bringUp(rec, server) };
    });
  }

  /**
   * Records the operation around `work`. On failure the server (if any) is marked
   * failed with the reason, unless the error is about the request or the engine/store
   * being away, and the error is rethrown carrying the operation id.
   */
  private async runOperation(
    type: OperationType,
    request: JobRequest,
    server: ServerRecord | undefined,
    reason: string,
    work: (rec: OperationRecorder) => Promise<{ server: ServerRecord | null; result?: unknown }>,
  ): Promise<OperationOutcome> {
    const warnings = this.containerIdWarnings(request, server);
    // Registered as active before the record exists, so a concurrent reconcile pass
    // never mistakes it for one a crash interrupted.
    const operationId = newOperationId();
    this.activeOperations.add(operationId);
    let rec: OperationRecorder;
    try {
      rec = await OperationRecorder.begin(this.deps, {
        operationId,
        type,
        jobId: request.jobId,
        reason,
        warnings,
      });
    } catch (error) {
      this.activeOperations.delete(operationId);
      throw error;
    }
    try {
      if (server) await rec.attachServer(server.serverId);
      const { server: after, result } = await work(rec);
      if (after) await rec.attachServer(after.serverId);
      const operation = await rec.succeed();
      return { operation, server: after, ...(result === undefined ? {} : { result }) };
    } catch (error) {
      const domainError =
        error instanceof ModeldockError
          ? error
          : new ModeldockError('internal', errorMessage(error), { cause: error });
      this.deps.logger.warn(
        { operationId: rec.id, type, jobId: request.jobId, err: domainError.message },
        'operation failed',
      );
      const operation = await rec.fail(domainError).catch(() => rec.current);
      throw new OperationFailedError(domainError, operation);
    } finally {
      this.activeOperations.delete(operationId);
    }
  }

  private async newServer(
    rec: OperationRecorder,
    request: JobRequest,
    kind: ServerKind,
  ): Promise<ServerRecord> {
    return rec.step('record', async () => {
      const number = await this.deps.store.allocateServerNumber();
      const serverId = formatServerId(number);
      const server = await this.deps.store.insertServer({
        serverId,
        number,
        jobId: request.jobId,
        model: request.model,
        dataset: request.dataset,
        kind,
        state: 'creating',
        reason: null,
        runtime: this.deps.runtime.kind,
        workerName: `${this.deps.options.instance}-${serverId}`,
        workerId: null,
        endpoint: null,
        restarts: 0,
        loadedAt: null,
        lastUsedAt: null,
        terminatedAt: null,
      });
      await rec.attachServer(serverId);
      this.publish(server);
      return server;
    });
  }

  /** Converge a server to `ready`: container present and running, worker ready, model loaded. */
  private async bringUp(rec: OperationRecorder, start: ServerRecord): Promise<ServerRecord> {
    let server = start;
    try {
      let info = await this.deps.runtime.inspect(server.workerName);
      if (info && (info.status === 'removing' || info.status === 'dead')) {
        // A container on its way out cannot be started again: finish removing it, recreate.
        await this.deps.runtime.remove(server.workerName);
        info = undefined;
      }
      if (!info) {
        server = await this.transition(server, 'creating', { endpoint: null, workerId: null });
        const name = server.workerName;
        const labels = {
          [LABELS.server]: server.serverId,
          [LABELS.job]: server.jobId,
          [LABELS.model]: server.model,
          [LABELS.kind]: server.kind,
        };
        // A started worker from the warm pool (when on) skips container start entirely.
        info = await rec.step(
          'create',
          async () =>
            (await this.pool.take(name)) ??
            this.deps.runtime.create(workerSpec(name, labels, this.deps.options.workerLimits)),
        );
      }
      if (!info.running) {
        const name = server.workerName;
        info = await rec.step('start', () => this.deps.runtime.start(name));
      }
      const endpoint = requireEndpoint(info);
      if (server.endpoint && server.endpoint !== endpoint) await this.deps.workers.forget(server.endpoint);
      server = await this.transition(server, 'loading', { workerId: info.id, endpoint, reason: null });
      await rec.step('wait_ready', () =>
        this.deps.workers.waitUntilReady(endpoint, {
          timeoutMs: this.deps.options.readyTimeoutMs,
          isAlive: async () => (await this.deps.runtime.inspect(server.workerName))?.running === true,
        }),
      );
      const modelName = server.jobId;
      const model = server.model;
      if (server.kind === 'job') await this.memoryPolicy.makeRoomFor(server.jobId, server.model);
      await rec.step('load', () => this.deps.workers.load(endpoint, modelName, model));
      const now = new Date().toISOString();
      server = await this.transition(server, 'ready', { loadedAt: now, lastUsedAt: now });
      if (server.kind === 'job') this.cacheRoute(server);
      return server;
    } catch (error) {
      await this.markFailed(server, error);
      throw error;
    }
  }

  private async unloadServer(
    rec: OperationRecorder,
    start: ServerRecord,
    reason: string,
  ): Promise<ServerRecord> {
    let server = start;
    // Withdrawn first: requests from now on wait for the job's next state (and load it
    // again on demand) instead of reaching a worker that is about to refuse them.
    const route = this.forgetRoute(server.jobId);
    try {
      server = await this.transition(server, 'unloading');
      await this.drainWithdrawn(rec, route);
      const endpoint = server.endpoint;
      if (endpoint) await rec.step('unload', () => this.deps.workers.unload(endpoint, server.jobId));
      return await this.transition(server, 'unloaded', {
        loadedAt: null,
        reason: reason === 'request' ? null : reason,
      });
    } catch (error) {
      await this.markFailed(server, error);
      throw error;
    }
  }

  private async terminateServer(
    rec: OperationRecorder,
    start: ServerRecord,
    reason: string,
  ): Promise<ServerRecord> {
    let server = start;
    if (server.state === 'terminated') return server;
    // Withdrawn before the state changes, so no new request is routed to a stopping worker.
    const route = server.kind === 'job' ? this.forgetRoute(server.jobId) : undefined;
    server = await this.transition(server, 'terminating');
    if (server.kind === 'job') await this.drainWithdrawn(rec, route);
    const name = server.workerName;
    // A job's worker gets a graceful stop; a TEMP worker has nothing left to finish, so it
    // is removed at once (remove kills it), which saves the stop's round of signals.
    if (server.kind === 'job') {
      await rec.step('stop', () =>
        this.deps.runtime.stop(name, { timeoutSeconds: this.deps.options.stopTimeoutSeconds ?? 5 }),
      );
    }
    await rec.step('remove', () => this.deps.runtime.remove(name));
    await this.deps.workers.forget(server.endpoint);
    return this.transition(server, 'terminated', {
      endpoint: null,
      loadedAt: null,
      terminatedAt: new Date().toISOString(),
      reason: reason === 'request' ? null : reason,
    });
  }

  /** Record a failure on the server, unless the failure says nothing about the server. */
  private async markFailed(server: ServerRecord, error: unknown): Promise<void> {
    if (error instanceof StoreUnavailableError) return;
    if (error instanceof RuntimeUnavailableError) return;
    if (server.kind === 'job') this.forgetRoute(server.jobId);
    try {
      const latest = (await this.deps.store.getServer(server.serverId)) ?? server;
      if (latest.state === 'failed' || latest.state === 'terminated') return;
      let reason = errorMessage(error);
      if (error instanceof WorkerError || (error as ModeldockError).code === 'timeout') {
        const logs = await this.deps.runtime.logs(latest.workerName, { tail: 5 }).catch(() => '');
        if (logs.trim()) reason += ` | worker log: ${logs.trim().split('\n').slice(-5).join(' / ')}`;
      }
      await this.transition(latest, 'failed', { reason: reason.slice(0, 2000) });
    } catch (markError) {
      this.deps.logger.warn(
        { err: errorMessage(markError), serverId: server.serverId },
        'could not mark failed',
      );
    }
  }

  /** Conditional state change; every write names the version it read. */
  async transition(server: ServerRecord, to: ServerState, patch: ServerPatch = {}): Promise<ServerRecord> {
    if (server.state !== to && !canTransition(server.state, to)) {
      throw new ConflictError(`server ${server.serverId} cannot go from ${server.state} to ${to}`);
    }
    const updated = await this.deps.store.updateServer(server.serverId, server.version, {
      ...patch,
      state: to,
    });
    this.publish(updated);
    return updated;
  }

  private publish(server: ServerRecord): void {
    this.deps.metrics.trackServer(server.serverId, server.state);
    this.deps.events.publish({ type: 'server', server });
    // What the memory budget leaves for the warm pool may have changed (memory released
    // by an unload, a termination or a failure; or taken): the pool looks again. Not on
    // `creating`: that job is about to take a pool worker, and dropping one first would
    // waste a started worker.
    if (server.kind === 'job' && server.state !== 'creating') this.pool.refill();
  }

  /** Whether a `ready` server really serves: container running and model loaded. */
  private async isServing(server: ServerRecord): Promise<boolean> {
    if (!server.endpoint) return false;
    const info = await this.deps.runtime.inspect(server.workerName);
    if (!info?.running || info.endpoint !== server.endpoint) return false;
    try {
      return await this.deps.workers.isLoaded(server.endpoint, server.jobId);
    } catch {
      return false;
    }
  }

  private cacheRoute(server: ServerRecord): RouteEntry {
    // A new route counts as used now, as the server's loadedAt does.
    return this.routes.set(new RouteEntry(server.jobId, server.serverId, server.endpoint!, server.jobId));
  }

  private async validateRequest(request: JobRequest): Promise<void> {
    validateId('job_id', request.jobId);
    await this.deps.catalog.requireModel(request.model);
    await this.deps.catalog.requireDataset(request.dataset);
  }

  /** Fill model/dataset from the job record when the caller gave only the job id. */
  private async resolveRequest(request: JobRequest | { jobId: string }): Promise<JobRequest> {
    validateId('job_id', request.jobId);
    const job = await this.requireJob(request.jobId);
    if ('model' in request) {
      validateId('model', request.model);
      validateId('dataset', request.dataset);
      this.assertSameJob(job, request);
      return request;
    }
    return { jobId: job.jobId, model: job.model, dataset: job.dataset };
  }

  private assertSameJob(job: JobRecord, request: JobRequest): void {
    if (job.model !== request.model || job.dataset !== request.dataset) {
      throw new ConflictError(
        `job ${job.jobId} serves model ${job.model} on dataset ${job.dataset}, not ${request.model} on ${request.dataset}; TERMINATE it first to change`,
      );
    }
  }

  private async requireJob(jobId: string): Promise<JobRecord> {
    const job = await this.deps.store.getJob(jobId);
    if (!job) throw new NotFoundError(`job ${jobId} not found`);
    return job;
  }

  private async liveServer(jobId: string): Promise<ServerRecord | undefined> {
    const server = await this.deps.store.currentServer(jobId);
    return server && server.state !== 'terminated' ? server : undefined;
  }

  private async requireLiveServer(jobId: string): Promise<ServerRecord> {
    await this.requireJob(jobId);
    const server = await this.liveServer(jobId);
    if (!server) {
      throw new ConflictError(
        `job ${jobId} has no live server (terminated or never created); send DEPLOY_CREATE`,
      );
    }
    return server;
  }

  /** The original payload carries a container_id; it is never acted on, only reported. */
  private containerIdWarnings(request: JobRequest, server: ServerRecord | undefined): string[] {
    const given = request.containerId;
    if (given === undefined || given === null || given === '') return [];
    if (
      server &&
      (given === server.workerName || (given.length >= 12 && server.workerId?.startsWith(given)))
    ) {
      return [];
    }
    const shown = given.length > 80 ? `${given.slice(0, 80)}…` : given;
    const own = server
      ? `its server is ${server.serverId} (container ${server.workerName}${server.workerId ? `, id ${server.workerId.slice(0, 12)}` : ''})`
      : 'it has no server yet';
    return [
      `container_id "${shown}" does not name job ${request.jobId}'s container and was ignored: modeldock finds a job's server by job_id; ${own}`,
    ];
  }
}

function requireEndpoint(info: WorkerInfo): string {
  if (!info.endpoint) throw new WorkerError(`worker ${info.name} is running but has no reachable endpoint`);
  return info.endpoint;
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
