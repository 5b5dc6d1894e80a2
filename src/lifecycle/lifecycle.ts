/**
 * The lifecycle of inference servers: the original five operations plus inference
 * routing, behind one object the API calls. Every operation is serialized per job
 * (different jobs run in parallel), idempotent, and recorded (intent first, then each
 * step, then the outcome).
 *
 * The store says what should exist, the runtime what does; operations converge the
 * runtime to the requested state from whatever state they find, which is also how a
 * server whose container vanished or crashed heals on the next DEPLOY_LOAD.
 *
 * Each story lives in its own module: one per operation (operations/), the steps that
 * move a server between states (server-steps.ts), how operations are recorded
 * (operation-runner.ts), the checks before acting (job-requests.ts) and routing
 * (job-routing.ts). This class wires them together.
 */
import { validateId } from '../ids.js';
import { KeyedMutex } from '../keyed-mutex.js';
import type { WorkerInfo } from '../runtime/runtime.js';
import type { JobRecord, ServerRecord, ServerState } from '../store/records.js';
import type { ServerPatch } from '../store/store.js';
import { CreationGate } from './creation-gate.js';
import { requireJob } from './job-requests.js';
import { JobRouting } from './job-routing.js';
import type { LifecycleContext } from './lifecycle-context.js';
import type { JobRequest, LifecycleDeps, OperationOutcome, TempRequest } from './lifecycle-types.js';
import { MemoryPolicy } from './memory-policy.js';
import { adoptOrRemove, realign, type AdoptionOutcome } from './operations/adopt.js';
import { deployCreate } from './operations/deploy-create.js';
import { deployLoad } from './operations/deploy-load.js';
import { deployUnload } from './operations/deploy-unload.js';
import { temp } from './operations/temp.js';
import { terminate } from './operations/terminate.js';
import { RouteTable, type RouteEntry } from './route-table.js';
import { ServerSteps } from './server-steps.js';
import { LIVE_STATES } from './state-machine.js';
import { WarmPool } from './warm-pool.js';

export type {
  JobRequest,
  LifecycleDeps,
  LifecycleOptions,
  OperationOutcome,
  TempRequest,
} from './lifecycle-types.js';
export { OperationFailedError } from './operation-runner.js';
export type { Route, RouteEntry } from './route-table.js';

export class Lifecycle {
  /** Operations this process is running; a `running` record not in here was interrupted. */
  readonly activeOperations = new Set<string>();
  readonly memoryPolicy: MemoryPolicy;
  readonly pool: WarmPool;
  readonly creations: CreationGate;
  private readonly ctx: LifecycleContext;
  private readonly routing: JobRouting;

  constructor(private readonly deps: LifecycleDeps) {
    const { options } = deps;
    const locks = new KeyedMutex();
    const routes = new RouteTable();
    this.creations = new CreationGate(
      options.creationLimits ?? { maxServers: 64, concurrency: 4, queue: 64 },
      async () => (await deps.store.listServers({ states: LIVE_STATES })).length,
    );
    this.pool = new WarmPool(
      deps.runtime,
      deps.workers,
      {
        size: options.warmPoolSize ?? 0,
        instance: options.instance,
        limits: options.workerLimits,
        readyTimeoutMs: options.readyTimeoutMs,
        memoryForPool: () => this.memoryPolicy.bytesLeftForPool(),
      },
      deps.logger,
    );
    this.memoryPolicy = new MemoryPolicy(
      deps.store,
      {
        deployUnload: (request, reason) => this.deployUnload(request, reason),
        lastUsedAt: (jobId) => this.lastUsedAt(jobId),
        isJobBusy: (jobId) => locks.isBusy(jobId),
      },
      {
        idleUnloadMs: options.idleUnloadMs ?? 0,
        maxLoadedModels: options.maxLoadedModels ?? 0,
        memoryBudgetBytes: options.memoryBudgetBytes ?? 0,
        modelBytes: (model) => deps.catalog.modelBytes(model),
        releasable: this.pool,
      },
      deps.logger,
    );
    const servers = new ServerSteps(deps, routes, this.creations, this.pool, () => this.memoryPolicy);
    this.ctx = {
      deps,
      locks,
      routes,
      creations: this.creations,
      servers,
      activeOperations: this.activeOperations,
    };
    this.routing = new JobRouting(this.ctx);
  }

  // ---------------------------------------------------------------- operations

  deployCreate(request: JobRequest, reason = 'request'): Promise<OperationOutcome> {
    return deployCreate(this.ctx, request, reason);
  }

  deployLoad(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    return deployLoad(this.ctx, request, reason);
  }

  deployUnload(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    return deployUnload(this.ctx, request, reason);
  }

  terminate(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    return terminate(this.ctx, request, reason);
  }

  /** One-shot: create, load, infer over the dataset (or the given inputs), always remove. */
  temp(request: TempRequest, reason = 'request'): Promise<OperationOutcome> {
    return temp(this.ctx, request, reason);
  }

  // ---------------------------------------------------------------- routing (job-routing.ts)

  /** The hot path's route: a ready job's, taken, or undefined (then ask acquireRoute). */
  tryAcquireRoute(jobId: string): RouteEntry | undefined {
    return this.routing.tryAcquire(jobId);
  }

  /** The route for one inference request (HTTP or gRPC), waiting for a load if needed. */
  acquireRoute(jobId: string): Promise<RouteEntry> {
    return this.routing.acquire(jobId);
  }

  infer(jobId: string, body: unknown): Promise<unknown> {
    return this.routing.infer(jobId, body);
  }

  healLostModel(stale: RouteEntry): Promise<RouteEntry> {
    return this.routing.healLostModel(stale);
  }

  invalidateRoute(jobId: string): void {
    this.routing.invalidate(jobId);
  }

  /** A request's worker did not answer (502): logged with job, server and reason; the route is dropped. */
  workerDidNotAnswer(route: Pick<RouteEntry, 'jobId' | 'serverId'>, error: unknown): void {
    this.routing.workerDidNotAnswer(route, error);
  }

  restartPending(jobId: string): () => void {
    return this.routing.restartPending(jobId);
  }

  lastUsedAt(jobId: string): number | undefined {
    return this.ctx.routes.lastUsedAt(jobId);
  }

  // ---------------------------------------------------------------- for the reconciler

  /** Run work under the job's lock (the reconciler uses this so it never races an operation). */
  withJobLock<T>(jobId: string, work: () => Promise<T>): Promise<T> {
    return this.ctx.locks.run(jobId, work);
  }

  /**
   * A running worker of ours without a record: adopt it as `serverId`, or remove it with a
   * record saying why (operations/adopt.ts). Call under the job's lock.
   */
  adoptOrRemove(worker: WorkerInfo, serverId: string, number: number): Promise<AdoptionOutcome> {
    return adoptOrRemove(this.ctx, worker, serverId, number);
  }

  /** A `ready`/`unloaded` record corrected to what its running worker has loaded. Call under the job's lock. */
  realign(server: ServerRecord, worker: WorkerInfo): Promise<ServerRecord> {
    return realign(this.ctx, server, worker);
  }

  /** Conditional state change; every write names the version it read. */
  transition(server: ServerRecord, to: ServerState, patch: ServerPatch = {}): Promise<ServerRecord> {
    return this.ctx.servers.transition(server, to, patch);
  }

  // ---------------------------------------------------------------- reads

  async getJob(jobId: string): Promise<{ job: JobRecord; server: ServerRecord | null }> {
    validateId('job_id', jobId);
    const job = await requireJob(this.deps, jobId);
    return { job, server: (await this.deps.store.currentServer(jobId)) ?? null };
  }
}
