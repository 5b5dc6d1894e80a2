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

/** Where inference for a job goes: the worker endpoint and the model name it serves. */
export interface Route {
  jobId: string;
  serverId: string;
  endpoint: string;
  modelName: string;
  /** `/v2/models/<model name>` on the worker, computed once per route. */
  modelPath: string;
}

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
  private readonly routes = new Map<string, Route>();
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
   * Where to send inference for a job. The fast path is an in-memory lookup; a miss
   * reads the store, and an unloaded server is loaded on demand (recorded as a
   * DEPLOY_LOAD with reason `on_demand`).
   */
  async route(jobId: string): Promise<Route> {
    const cached = this.cachedRoute(jobId);
    if (cached) return cached;
    validateId('job_id', jobId);
    return this.locks.run(jobId, async () => {
      const again = this.routes.get(jobId);
      if (again) return again;
      let server = await this.requireLiveServer(jobId);
      if (server.state === 'failed') {
        throw new ConflictError(
          `server ${server.serverId} of job ${jobId} has failed (${server.reason ?? 'unknown reason'}); send DEPLOY_LOAD to recover it`,
        );
      }
      if (server.state !== 'ready' || !server.endpoint) {
        const job = await this.requireJob(jobId);
        const outcome = await this.deployLoadLocked(
          { jobId, model: job.model, dataset: job.dataset },
          'on_demand',
        );
        server = outcome.server!;
      }
      const route = this.cacheRoute(server);
      this.lastUsed.set(jobId, Date.now());
      return route;
    });
  }

  /**
   * The route of a job whose server is known to be ready, without touching the store or
   * waiting: the hot path of inference. Undefined means "ask route()", which may load.
   */
  cachedRoute(jobId: string): Route | undefined {
    const cached = this.routes.get(jobId);
    if (cached) this.lastUsed.set(jobId, Date.now());
    return cached;
  }

  /** Inference through the router with a parsed body (the /v2 proxy streams instead). */
  async infer(jobId: string, body: unknown): Promise<unknown> {
    const route = await this.route(jobId);
    try {
      return await this.deps.workers.infer(route.endpoint, route.modelName, body);
    } catch (error) {
      if (error instanceof WorkerError) this.invalidateRoute(jobId);
      if (!(error instanceof NotFoundError)) throw error;
      // The worker does not have the model the router holds as ready: heal, then once more.
      const healed = await this.healLostModel(route);
      return await this.deps.workers.infer(healed.endpoint, healed.modelName, body);
    }
  }

  /**
   * A worker answered "not loaded" on a route the router holds as ready (something
   * unloaded it behind the router's back, or the worker lost it): the route is dropped and
   * the server healed at once under the job's lock (a DEPLOY_LOAD with reason
   * `worker_lost_model`, which finds the model missing and loads it). Resolves with the
   * fresh route so the caller can send its request again; concurrent callers share one heal.
   */
  async healLostModel(stale: Route): Promise<Route> {
    const { jobId } = stale;
    if (this.routes.get(jobId) === stale) this.routes.delete(jobId);
    return this.locks.run(jobId, async () => {
      const fresh = this.routes.get(jobId);
      if (fresh) return fresh;
      const job = await this.requireJob(jobId);
      const request = { jobId, model: job.model, dataset: job.dataset };
      const outcome = await this.deployLoadLocked(request, 'worker_lost_model');
      return this.cacheRoute(outcome.server!);
    });
  }

  /** Drop the cached route after the worker did not answer: the next request re-checks. */
  invalidateRoute(jobId: string): void {
    this.routes.delete(jobId);
  }

  lastUsedAt(jobId: string): number | undefined {
    return this.lastUsed.get(jobId);
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
    this.routes.delete(server.jobId);
    try {
      server = await this.transition(server, 'unloading');
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
    if (server.kind === 'job') this.routes.delete(server.jobId);
    if (server.state === 'terminated') return server;
    server = await this.transition(server, 'terminating');
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
    if (server.kind === 'job') this.routes.delete(server.jobId);
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

  private cacheRoute(server: ServerRecord): Route {
    const route: Route = {
      jobId: server.jobId,
      serverId: server.serverId,
      endpoint: server.endpoint!,
      modelName: server.jobId,
      modelPath: `/v2/models/${encodeURIComponent(server.jobId)}`,
    };
    this.routes.set(server.jobId, route);
    return route;
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
