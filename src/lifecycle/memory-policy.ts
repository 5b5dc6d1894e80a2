/**
 * Memory policy, as model servers do it: a model idle for longer than the keep-alive is
 * unloaded, and at most `maxLoadedModels` models are loaded at once, the least recently
 * used one being unloaded to make room. Every unload is a recorded DEPLOY_UNLOAD whose
 * reason (`idle_timeout`, `lru`) is in the operation history.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { ServerRecord } from '../store/records.js';
import type { Store } from '../store/store.js';

export interface MemoryPolicyOptions {
  idleUnloadMs: number;
  maxLoadedModels: number;
}

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
   * Before `jobId` loads: unload least-recently-used models until there is room. Only
   * jobs with no operation in flight are chosen, so two loads making room for each other
   * can never wait on each other's lock.
   */
  async makeRoomFor(jobId: string): Promise<string[]> {
    const max = this.options.maxLoadedModels;
    if (max <= 0) return [];
    const loaded = (await this.store.listServers({ kind: 'job', states: ['ready', 'loading'] })).filter(
      (s) => s.jobId !== jobId,
    );
    const excess = loaded.length - (max - 1);
    if (excess <= 0) return [];
    const victims = loaded
      .filter((s) => s.state === 'ready' && !this.unloader.isJobBusy(s.jobId))
      .sort((a, b) => this.lastUse(a) - this.lastUse(b))
      .slice(0, excess);
    for (const victim of victims) {
      this.logger.info({ jobId: victim.jobId, for: jobId }, 'unloading least recently used model');
      await this.unloader.deployUnload({ jobId: victim.jobId }, 'lru');
    }
    return victims.map((v) => v.jobId);
  }
}
