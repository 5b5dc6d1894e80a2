/**
 * Memory policy, as model servers do it: a model idle for longer than the keep-alive is
 * unloaded, and at most `maxLoadedModels` models are loaded at once, the least recently
 * used one being unloaded to make room; likewise under the one memory budget, which
 * bounds every managed worker together: the dedicated servers' loaded models (their
 * sizes), the idle warm-pool workers, and the shared workers (what they are charged:
 * each runtime at its least measure plus its models' loads, shared-memory.ts).
 * Idle pool workers are given up before any model is unloaded: they cost a container
 * start, a model costs a reload; then dedicated models, least recently used first; then
 * idle shared models, by the shared placement's own no-thrash rules (shared-fleet.ts).
 * Every unload is a recorded DEPLOY_UNLOAD whose reason (`idle_timeout`, `lru`) is in
 * the operation history.
 *
 * How it fails (docs/operations.md#memory-policy): narrowly. An unload that fails is that
 * model's problem: the idle pass and the search for room go on with the next one, and
 * the load that asked for room is not failed by another job's unload. When nothing more
 * can be unloaded (every other model is busy, or its unload failed), the load goes ahead
 * over the limit rather than being refused: refusing would leave a job unable to serve
 * because of other jobs' operations, while a model over the limit is given back by the
 * next load or idle pass. It is not silent: the load's operation carries a warning, the
 * log says so, and modeldock_memory_over_limit_total counts it.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { ServerRecord, ServerState } from '../store/records.js';
import type { Store } from '../store/store.js';

export interface MemoryPolicyOptions {
  idleUnloadMs: number;
  maxLoadedModels: number;
  /** Bytes all loaded models may take together; 0: no budget. */
  memoryBudgetBytes: number;
  /** Estimated memory of a loaded model (its ONNX file size: weights dominate). */
  modelBytes: (model: string) => Promise<number>;
  /** Memory that can be given back without unloading a model (the warm pool's idle workers). */
  releasable?: ReleasableMemory;
  /** A load goes ahead over a limit (counted as a metric). */
  onOverLimit?: (limit: 'models' | 'budget') => void;
  /** The shared workers, which the same budget bounds. */
  shared?: SharedCharge;
  /**
   * The live server records not placed shared, as the router keeps them in memory
   * (live-servers.ts): what a shared placement's charge for the dedicated servers is
   * counted on, without a read of the store (or of every shared job's record) per
   * placement. Default: the store.
   */
  unsharedServers?: () => Promise<Iterable<ServerRecord>>;
}

/** The shared fleet as the budget sees it (shared-fleet.ts). */
export interface SharedCharge {
  /** What the budget charges the shared workers, together (shared-memory.ts's accounting). */
  chargedBytes(): number;
  /** Evict idle shared models until `need` bytes came back (or none, when the rules cannot). */
  evictForOutside(need: number, forJob: string): Promise<{ evicted: string[]; freedBytes: number }>;
}

/** What making room did: the jobs unloaded, and why the load is over a limit if it is. */
export interface Room {
  unloaded: string[];
  /** Set when the load goes ahead over a limit: a warning for its operation. */
  overLimit?: string;
}

/** Memory held by something cheaper to drop than a loaded model. */
export interface ReleasableMemory {
  /** Bytes held now, as the budget counts them. */
  heldBytes(): number;
  /** Give memory back until at most `maxBytes` are held; resolves with how many pieces were dropped. */
  releaseDownTo(maxBytes: number): Promise<number>;
}

/**
 * States in which a job server holds its model's memory, or is about to (`creating`:
 * it loads next) or has not yet let go of it (`unloading`, `terminating`).
 */
const MODEL_HOLDING_STATES: ServerState[] = ['creating', 'loading', 'ready', 'unloading', 'terminating'];

export interface Unloader {
  deployUnload(request: { jobId: string }, reason: string): Promise<unknown>;
  lastUsedAt(jobId: string): number | undefined;
  isJobBusy(jobId: string): boolean;
}

export class MemoryPolicy {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly unloader: Unloader,
    private readonly options: MemoryPolicyOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.options.idleUnloadMs <= 0) return;
    const period = Math.max(250, Math.min(5_000, Math.floor(this.options.idleUnloadMs / 4)));
    this.timer = setInterval(() => void this.unloadIdle(), period);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private lastUse(server: ServerRecord): number {
    return (
      this.unloader.lastUsedAt(server.jobId) ??
      Date.parse(server.lastUsedAt ?? server.loadedAt ?? server.updatedAt)
    );
  }

  /** Unload every ready job server idle for longer than the keep-alive. */
  async unloadIdle(now = Date.now()): Promise<string[]> {
    const unloaded: string[] = [];
    try {
      const ready = await this.store.listServers({ kind: 'job', states: ['ready'] });
      for (const server of ready) {
        if (now - this.lastUse(server) < this.options.idleUnloadMs) continue;
        if (this.unloader.isJobBusy(server.jobId)) continue;
        // One model that cannot be unloaded keeps the others from nothing.
        if (await this.tryUnload(server.jobId, 'idle_timeout')) unloaded.push(server.jobId);
      }
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'idle unload pass failed');
    }
    return unloaded;
  }

  /**
   * What the memory budget leaves next to the models, for the warm pool's idle workers
   * (negative when the models alone exceed it); undefined when there is no budget.
   */
  async bytesLeftForPool(): Promise<number | undefined> {
    const budget = this.options.memoryBudgetBytes;
    if (budget <= 0) return undefined;
    return budget - (await this.dedicatedBytes()) - (this.options.shared?.chargedBytes() ?? 0);
  }

  /**
   * What the budget charges outside the shared fleet, which a shared placement counts
   * beside its workers: the dedicated servers' models and the idle pool workers (0
   * without a budget).
   */
  async chargedOutsideShared(): Promise<number> {
    if (this.options.memoryBudgetBytes <= 0) return 0;
    return (await this.dedicatedBytes()) + (this.options.releasable?.heldBytes() ?? 0);
  }

  /** The dedicated servers' models that hold memory, at their sizes. */
  private async dedicatedBytes(): Promise<number> {
    const live = this.options.unsharedServers;
    const holding = live
      ? [...(await live())].filter(
          (s) => s.kind === 'job' && s.placement !== 'shared' && MODEL_HOLDING_STATES.includes(s.state),
        )
      : (await this.store.listServers({ kind: 'job', states: MODEL_HOLDING_STATES })).filter(
          (s) => s.placement !== 'shared',
        );
    const sizes = await Promise.all(holding.map((s) => this.options.modelBytes(s.model)));
    return sizes.reduce((a, b) => a + b, 0);
  }

  /**
   * Before `jobId` loads: give up idle pool workers, then unload least-recently-used
   * models, until there is room. Only
   * jobs with no operation in flight are chosen, so two loads making room for each other
   * can never wait on each other's lock. A victim whose unload fails is skipped for the
   * next; when no room can be made the load goes ahead over the limit (see the top).
   */
  async makeRoomFor(jobId: string, model: string): Promise<Room> {
    const { maxLoadedModels: max, memoryBudgetBytes: budget } = this.options;
    if (max <= 0 && budget <= 0) return { unloaded: [] };
    // Shared servers are not this policy's: their workers' measured memory is (eviction.ts).
    const loaded = (await this.store.listServers({ kind: 'job', states: ['ready', 'loading'] })).filter(
      (s) => s.jobId !== jobId && s.placement !== 'shared',
    );
    const sizes = new Map<string, number>();
    if (budget > 0) {
      for (const s of loaded) sizes.set(s.serverId, await this.options.modelBytes(s.model));
    }
    const needed = budget > 0 ? await this.options.modelBytes(model) : 0;
    let count = loaded.length;
    // One budget: what the shared workers are charged counts beside the dedicated models.
    const sharedBytes = budget > 0 ? (this.options.shared?.chargedBytes() ?? 0) : 0;
    let bytes = [...sizes.values()].reduce((a, b) => a + b, 0) + sharedBytes;
    if (budget > 0) await this.releaseFor(jobId, budget - bytes - needed);
    const overLimit = () => (max > 0 && count + 1 > max) || (budget > 0 && bytes + needed > budget);
    const candidates = loaded
      .filter((s) => s.state === 'ready' && !this.unloader.isJobBusy(s.jobId))
      .sort((a, b) => this.lastUse(a) - this.lastUse(b));
    const victims: string[] = [];
    for (const victim of candidates) {
      if (!overLimit()) break;
      this.logger.info({ jobId: victim.jobId, for: jobId }, 'unloading the least recently used model');
      if (!(await this.tryUnload(victim.jobId, 'lru'))) continue;
      victims.push(victim.jobId);
      count--;
      bytes -= sizes.get(victim.serverId) ?? 0;
    }
    const shared = this.options.shared;
    if (budget > 0 && shared && sharedBytes > 0 && bytes + needed > budget) {
      const { evicted, freedBytes } = await shared.evictForOutside(bytes + needed - budget, jobId);
      if (evicted.length > 0) {
        this.logger.info({ for: jobId, evicted }, 'evicted idle shared models to make room for a model');
      }
      victims.push(...evicted);
      bytes -= freedBytes;
    }
    if (!overLimit()) return { unloaded: victims };
    const limit = max > 0 && count + 1 > max ? 'models' : 'budget';
    const overLimitWarning =
      limit === 'models'
        ? `loaded over MODELDOCK_MAX_LOADED_MODELS=${max}: ${count} other models are loaded and none more could be unloaded (busy with an operation, or their unload failed)`
        : `loaded over MODELDOCK_MEMORY_BUDGET=${budget} bytes: the models take ${bytes + needed} bytes with this one (the shared workers' measured memory included) and none more could be unloaded or evicted (busy with an operation or requests, younger than the minimum residency, or their unload failed)`;
    this.logger.warn({ jobId, limit }, overLimitWarning);
    this.options.onOverLimit?.(limit);
    return { unloaded: victims, overLimit: overLimitWarning };
  }

  /** Unload a job's model; a failure is logged and reported as false, not thrown. */
  private async tryUnload(jobId: string, reason: 'idle_timeout' | 'lru'): Promise<boolean> {
    try {
      await this.unloader.deployUnload({ jobId }, reason);
      return true;
    } catch (error) {
      this.logger.warn(
        { jobId, reason, err: errorMessage(error) },
        'could not unload the model; trying the next',
      );
      return false;
    }
  }

  /** Give up idle pool workers until they fit in `allowance` (what the models leave). */
  private async releaseFor(jobId: string, allowance: number): Promise<void> {
    const releasable = this.options.releasable;
    if (!releasable || releasable.heldBytes() <= allowance) return;
    const dropped = await releasable.releaseDownTo(Math.max(0, allowance));
    if (dropped > 0) {
      this.logger.info({ for: jobId, count: dropped }, 'gave up idle pool workers to make room for a model');
    }
  }
}
