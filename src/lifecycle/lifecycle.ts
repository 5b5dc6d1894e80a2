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
import type { RepositoryEntry } from '../runtime/worker-client.js';
import type { JobRecord, ServerRecord, ServerState } from '../store/records.js';
import type { ServerPatch } from '../store/store.js';
import { Autoscaler } from './autoscaler.js';
import { CreationGate } from './creation-gate.js';
import { liveServers, requireJob } from './job-requests.js';
import { JobRouting } from './job-routing.js';
import type { LifecycleContext } from './lifecycle-context.js';
import type { JobRequest, LifecycleDeps, OperationOutcome, TempRequest } from './lifecycle-types.js';
import { MemoryPolicy } from './memory-policy.js';
import { adoptOrRemove, adoptSharedModel, realign, type AdoptionOutcome } from './operations/adopt.js';
import { deployCreate } from './operations/deploy-create.js';
import { deployLoad, loadReplicaLocked } from './operations/deploy-load.js';
import { deployUnload, restartUnloadedLocked } from './operations/deploy-unload.js';
import { temp } from './operations/temp.js';
import { addReplica, removeReplica } from './operations/scale.js';
import { terminate } from './operations/terminate.js';
import { RouteTable, type Route, type RouteEntry } from './route-table.js';
import { ServerSteps } from './server-steps.js';
import { DEFAULT_SHARED_OPTIONS, SharedFleet } from './shared-fleet.js';
import { SharedMemory } from './shared-memory.js';
import { evict } from './operations/evict.js';
import { LiveServers } from './live-servers.js';
import { intentsFirst } from './operation-intents.js';
import { WarmPools } from './warm-pools.js';

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
  readonly pool: WarmPools;
  readonly creations: CreationGate;
  readonly autoscaler: Autoscaler;
  readonly fleet: SharedFleet;
  /** The live server records in memory (live-servers.ts), refreshed by the reconciler's full pass. */
  readonly live: LiveServers;
  private readonly ctx: LifecycleContext;
  private readonly routing: JobRouting;

  private readonly deps: LifecycleDeps;

  constructor(given: LifecycleDeps) {
    // Every write of an operation carries its pending intent (operation-intents.ts).
    const deps = { ...given, store: intentsFirst(given.store) };
    this.deps = deps;
    const { options } = deps;
    const locks = new KeyedMutex();
    const routes = new RouteTable();
    const live = new LiveServers(deps.store);
    this.live = live;
    this.creations = new CreationGate(
      options.creationLimits ?? { maxServers: 64, concurrency: 4, queue: 64 },
      // Workers are what MODELDOCK_MAX_SERVERS bounds: a dedicated server's own, and each shared worker once.
      async () => {
        let dedicated = 0;
        for (const server of await live.notShared()) if (server.placement === 'dedicated') dedicated++;
        return dedicated + this.fleet.workerCount;
      },
    );
    this.pool = new WarmPools(
      deps.runtime,
      deps.workers,
      deps.catalog.servingRuntimes,
      {
        size: options.warmPoolSize ?? 0,
        runtimes: options.warmPoolRuntimes ?? {},
        instance: options.instance,
        limits: options.workerLimits,
        readyTimeoutMs: options.readyTimeoutMs,
        memoryForPool: () => this.memoryPolicy.bytesLeftForPool(),
        serverRoom: async () => {
          const { maxServers, liveServers } = await this.creations.status();
          return maxServers - liveServers;
        },
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
        onOverLimit: (limit) => deps.metrics.memoryOverLimit.inc({ limit }),
        // One budget for every worker: the shared fleet's measured memory counts too.
        unsharedServers: () => live.notShared(),
        shared: {
          chargedBytes: () => this.fleet.chargedBytes(),
          evictForOutside: (need, forJob) => this.fleet.evictForOutside(need, forJob),
        },
      },
      deps.logger,
    );
    const shared = options.shared ?? DEFAULT_SHARED_OPTIONS;
    const budgetBytes = options.memoryBudgetBytes ?? 0;
    const memory = new SharedMemory({
      budgetBytes,
      minResidencyMs: shared.minResidencyMs,
      workerLimitBytes: options.workerLimits.memoryBytes,
      headroomBytes: Math.floor(
        (budgetBytes * (shared.headroomPercent ?? DEFAULT_SHARED_OPTIONS.headroomPercent!)) / 100,
      ),
    });
    this.fleet = new SharedFleet(
      deps,
      live,
      this.pool,
      this.creations,
      memory,
      {
        // A job with an operation under way counts as busy: it is never chosen to go.
        inFlight: (server) =>
          (routes.forServer(server.jobId, server.serverId)?.inFlight ?? 0) +
          (locks.isBusy(server.jobId) ? 1 : 0),
        lastUsedAt: (server) =>
          routes.lastUsedAt(server.jobId) ??
          Date.parse(server.lastUsedAt ?? server.loadedAt ?? server.updatedAt),
      },
      shared,
    );
    const servers = new ServerSteps(
      deps,
      routes,
      this.creations,
      this.pool,
      () => this.memoryPolicy,
      this.fleet,
      live,
    );
    this.ctx = {
      deps,
      locks,
      routes,
      creations: this.creations,
      servers,
      fleet: this.fleet,
      activeOperations: this.activeOperations,
    };
    this.routing = new JobRouting(this.ctx);
    this.fleet.useEvictor((victim, cause) => evict(this.ctx, victim, cause));
    this.fleet.useOutsideCharge(() => this.memoryPolicy.chargedOutsideShared());
    this.autoscaler = new Autoscaler({
      store: deps.store,
      events: deps.events,
      routes,
      metrics: deps.metrics,
      logger: deps.logger,
      options: options.scaling ?? { target: 4, upDelayMs: 1_000, downDelayMs: 30_000 },
      actions: {
        addReplica: (jobId) => addReplica(this.ctx, jobId),
        removeReplica: (jobId) => removeReplica(this.ctx, jobId),
        waiting: (jobId) => this.routing.waiting(jobId),
      },
    });
  }

  // ---------------------------------------------------------------- operations

  deployCreate(request: JobRequest, reason = 'request'): Promise<OperationOutcome> {
    // The job's bounds or desired count may change: the autoscaler reads them again.
    return deployCreate(this.ctx, request, reason).finally(() => this.autoscaler.forget(request.jobId));
  }

  deployLoad(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    return deployLoad(this.ctx, request, reason);
  }

  deployUnload(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    return deployUnload(this.ctx, request, reason);
  }

  terminate(request: JobRequest | { jobId: string }, reason = 'request'): Promise<OperationOutcome> {
    return terminate(this.ctx, request, reason).finally(() => this.autoscaler.forget(request.jobId));
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

  /** A replica's worker did not answer: its route takes no more requests until it is looked up again. */
  invalidateRoute(route: Pick<Route, 'jobId' | 'serverId'>): void {
    this.routing.invalidate(route);
  }

  /**
   * The reconciler's restart of one replica whose worker died, back to the state it had
   * (`ready`: loaded again; `unloaded`: started without the model); the job's other
   * replicas keep serving meanwhile.
   */
  async restartServer(serverId: string, target: 'ready' | 'unloaded'): Promise<OperationOutcome | undefined> {
    const first = await this.deps.store.getServer(serverId);
    if (!first) return undefined;
    return this.ctx.locks.run(first.jobId, async () => {
      const server = await this.deps.store.getServer(serverId);
      if (!server || server.state === 'terminated') return undefined;
      const job = await requireJob(this.deps, server.jobId);
      const request = { jobId: job.jobId, model: job.model, dataset: job.dataset };
      return target === 'ready'
        ? loadReplicaLocked(this.ctx, request, server, 'restart')
        : restartUnloadedLocked(this.ctx, request, server);
    });
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

  /**
   * A model on a shared worker that no live record names: adopt it as a shared server of
   * its job, or unload it saying why (operations/adopt.ts). Call under the job's lock.
   */
  adoptSharedModel(worker: WorkerInfo, entry: RepositoryEntry): Promise<'adopted' | 'removed'> {
    return adoptSharedModel(this.ctx, worker, entry);
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

  /**
   * A job, its live servers (replicas) and the server answers name: its first live one,
   * else its last (terminated) one.
   */
  async getJob(
    jobId: string,
  ): Promise<{ job: JobRecord; server: ServerRecord | null; servers: ServerRecord[] }> {
    validateId('job_id', jobId);
    const job = await requireJob(this.deps, jobId);
    const servers = await liveServers(this.deps, jobId);
    return { job, server: servers[0] ?? (await this.deps.store.currentServer(jobId)) ?? null, servers };
  }
}
