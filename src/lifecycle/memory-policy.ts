/**
 * Memory policy, as model servers do it: a model idle for longer than the keep-alive is
 * unloaded, and at most `maxLoadedModels` models are loaded at once, the least recently
 * used one being unloaded to make room; likewise under a memory budget (the sum of the
 * loaded models' sizes plus the idle warm-pool workers). Idle pool workers are given up
 * before any model is unloaded: they cost a container start, a model costs a reload.
 * Every unload is a recorded DEPLOY_UNLOAD whose reason (`idle_timeout`, `lru`) is in
 * the operation history.
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
        await this.unloader.deployUnload({ jobId: server.jobId }, 'idle_timeout');
        unloaded.push(server.jobId);
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
    const holding = await this.store.listServers({ kind: 'job', states: MODEL_HOLDING_STATES });
    const sizes = await Promise.all(holding.map((s) => this.options.modelBytes(s.model)));
    return budget - sizes.reduce((a, b) => a + b, 0);
  }

  /**
   * Before `jobId` loads: give up idle pool workers, then unload least-recently-used
   * models, until there is room. Only
   * jobs with no operation in flight are chosen, so two loads making room for each other
   * can never wait on each other's lock.
   */
  async makeRoomFor(jobId: string, model: string): Promise<string[]> {
    const { maxLoadedModels: max, memoryBudgetBytes: budget } = this.options;
    if (max <= 0 && budget <= 0) return [];
    const loaded = (await this.store.listServers({ kind: 'job', states: ['ready', 'loading'] })).filter(
      (s) => s.jobId !== jobId,
    );
    const sizes = new Map<string, number>();
    if (budget > 0) {
      for (const s of loaded) sizes.set(s.serverId, await this.options.modelBytes(s.model));
    }
    const needed = budget > 0 ? await this.options.modelBytes(model) : 0;
    let count = loaded.length;
    let bytes = [...sizes.values()].reduce((a, b) => a + b, 0);
    if (budget > 0) await this.releaseFor(jobId, budget - bytes - needed);
    const overLimit = () => (max > 0 && count + 1 > max) || (budget > 0 && bytes + needed > budget);
    const candidates = loaded
      .filter((s) => s.state === 'ready' && !this.unloader.isJobBusy(s.jobId))
      .sort((a, b) => this.lastUse(a) - this.lastUse(b));
    const victims: string[] = [];
    for (const victim of candidates) {
      if (!overLimit()) break;
      this.logger.info({ jobId: victim.jobId, for: jobId }, 'unloading the least recently used model');
      await this.unloader.deployUnload({ jobId: victim.jobId }, 'lru');
      victims.push(victim.jobId);
      count--;
      bytes -= sizes.get(victim.serverId) ?? 0;
    }
    return victims;
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
