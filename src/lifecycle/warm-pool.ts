/**
 * A warm pool of started, model-less workers (MODELDOCK_WARM_POOL). DEPLOY_CREATE and
 * TEMP take one instead of starting a container: the worker is renamed to the server's
 * deterministic name, so crash recovery and lookups by name work as for any other
 * worker. Its labels stay those of the pool (`modeldock.kind=pool`): with the pool on, a
 * job's container is found through the API (or by name), not by `modeldock.job`.
 *
 * Under a memory budget the pool is bounded by it: every idle pool worker counts at the
 * memory it was measured to take (its rss), and the pool holds only as many as the
 * budget leaves next to the loaded models — min(configured size, what fits). The pool
 * does not know about models: it asks `memoryForPool` how much is left, whenever
 * something may have changed (a worker taken, started or measured, memory released).
 *
 * The pool converges in the background, one pass at a time; leftovers of an earlier
 * router are removed at start-up (they may have been half-started). Off by default.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { LABELS, type Runtime, type WorkerInfo, type WorkerLimits } from '../runtime/runtime.js';
import type { WorkerClient } from '../runtime/worker-client.js';
import { workerSpec } from './worker-spec.js';

export interface WarmPoolOptions {
  size: number;
  instance: string;
  limits: WorkerLimits;
  readyTimeoutMs: number;
  /**
   * Bytes the memory budget leaves for idle pool workers (the budget minus what the
   * models take; may be negative), or undefined when there is no budget.
   */
  memoryForPool?: () => Promise<number | undefined>;
}

export const POOL_KIND = 'pool';

/**
 * What an idle pool worker is counted at before one has been measured. A model-less
 * worker measures about 87 MiB rss (Node 20 with ONNX Runtime warmed at boot, x86-64);
 * the estimate is half as much again, so a pool sized by it never overshoots the budget.
 */
export const POOL_WORKER_ESTIMATE_BYTES = 128 * 1024 ** 2;

export type PoolBoundReason = 'memory_budget';

export interface PoolBound {
  /** Workers the pool holds now: the configured size, or fewer when they do not fit. */
  limit: number;
  /** What keeps `limit` below the configured size; null when nothing does. */
  boundedBy: PoolBoundReason | null;
}

/** How many pool workers fit: `freeBytes` undefined means no budget, so the configured size. */
export function poolBound(size: number, freeBytes: number | undefined, workerBytes: number): PoolBound {
  if (freeBytes === undefined) return { limit: size, boundedBy: null };
  const fits = Math.max(0, Math.floor(freeBytes / Math.max(1, workerBytes)));
  return fits < size ? { limit: fits, boundedBy: 'memory_budget' } : { limit: size, boundedBy: null };
}

export interface PoolStatus extends PoolBound {
  /** The configured size (0 when the pool is off). */
  size: number;
  ready: number;
  /** Workers being started. */
  filling: number;
  /** What each idle pool worker counts for against the memory budget. */
  workerBytes: number;
  /** Whether `workerBytes` was measured in a pool worker or is still the estimate. */
  workerBytesMeasured: boolean;
  /** What the memory budget left for pool workers when the pool last looked; null without a budget. */
  budgetFreeBytes: number | null;
}

export class WarmPool {
  private readonly ready: WorkerInfo[] = [];
  private filling = 0;
  /** Removals of given-up workers still under way: their memory is not free until they end. */
  private readonly removals = new Set<Promise<void>>();
  private stopped = false;
  private failures = 0;
  /** No new worker is started before this time (back-off after a failed start). */
  private retryAt = 0;
  /** A pass is running; `again` asks it for one more, since something changed meanwhile. */
  private adjusting = false;
  private again = false;
  private bound: PoolBound;
  private boundLogged = false;
  private budgetFreeBytes: number | undefined;
  private workerBytes: number;
  private workerBytesMeasured = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly runtime: Runtime,
    private readonly workers: WorkerClient,
    private readonly options: WarmPoolOptions,
    private readonly logger: Logger,
  ) {
    this.bound = poolBound(options.size, undefined, 1);
    // A worker cannot take more than its own memory limit.
    this.workerBytes = Math.min(POOL_WORKER_ESTIMATE_BYTES, options.limits.memoryBytes);
  }

  get enabled(): boolean {
    return this.options.size > 0 && typeof this.runtime.rename === 'function';
  }

  get prefix(): string {
    return `${this.options.instance}-pool-`;
  }

  /** Whether a worker belongs to the pool (and so is the pool's business, not the reconciler's). */
  owns(worker: WorkerInfo): boolean {
    return worker.labels[LABELS.kind] === POOL_KIND && worker.name.startsWith(this.prefix);
  }

  status(): PoolStatus {
    const bound = this.enabled ? this.bound : { limit: 0, boundedBy: null };
    return {
      size: this.enabled ? this.options.size : 0,
      ...bound,
      ready: this.ready.length,
      filling: this.filling,
      workerBytes: this.workerBytes,
      workerBytesMeasured: this.workerBytesMeasured,
      budgetFreeBytes: this.budgetFreeBytes ?? null,
    };
  }

  /** Memory the idle pool holds, is about to hold or has not yet let go of, as the budget counts it. */
  heldBytes(): number {
    return (this.ready.length + this.filling + this.removals.size) * this.workerBytes;
  }

  async start(): Promise<void> {
    if (this.options.size > 0 && !this.enabled) {
      this.logger.warn(`the ${this.runtime.kind} runtime cannot hand over workers; the warm pool is off`);
    }
    if (!this.enabled) return;
    for (const worker of await this.runtime.list()) {
      if (this.owns(worker)) await this.runtime.remove(worker.name);
    }
    this.refill();
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Resolves when the pool is full: as many ready workers as its bound allows (the
   * configured size, or fewer under the memory budget), none starting or being removed,
   * and no pass pending (tests, benchmarks).
   */
  whenFull(): Promise<void> {
    if (this.isFull()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Hand a started, ready worker over under `name`, or undefined when none is ready.
   * A worker that died while waiting is dropped and the next one tried.
   */
  async take(name: string): Promise<WorkerInfo | undefined> {
    if (!this.enabled) return undefined;
    for (let worker = this.ready.shift(); worker; worker = this.ready.shift()) {
      this.refill();
      try {
        const renamed = await this.runtime.rename!(worker.name, name);
        if (renamed.running && renamed.endpoint) return renamed;
      } catch (error) {
        this.logger.warn({ worker: worker.name, err: errorMessage(error) }, 'pool worker unusable; dropped');
      }
      await this.runtime.remove(worker.name).catch(() => undefined);
    }
    return undefined;
  }

  /**
   * Give up idle workers until the pool holds at most `maxBytes` (a model needs the room;
   * an idle worker is the cheapest thing to drop). Workers still starting are not
   * waited for: the next pass finds they no longer fit and removes them once up.
   * Resolves, with how many this call gave up, once every removal under way has ended,
   * so the memory is really free when the model loads.
   */
  async releaseDownTo(maxBytes: number): Promise<number> {
    let given = 0;
    // Removals under way are on their way out already: only workers kept count here.
    while (this.ready.length > 0 && (this.ready.length + this.filling) * this.workerBytes > maxBytes) {
      void this.giveUp(this.ready.pop()!);
      given++;
    }
    await Promise.all([...this.removals]);
    return given;
  }

  /**
   * Look again at what fits and converge to it: start missing workers, give up those the
   * budget no longer fits. Called whenever that may have changed; passes never overlap.
   */
  refill(): void {
    if (!this.enabled || this.stopped) return;
    this.again = true;
    if (this.adjusting) return;
    this.adjusting = true;
    void this.adjustWhileAsked();
  }

  private async adjustWhileAsked(): Promise<void> {
    try {
      while (this.again && !this.stopped) {
        this.again = false;
        await this.adjust();
      }
    } finally {
      this.adjusting = false;
      this.wakeIfFull();
    }
  }

  private async adjust(): Promise<void> {
    let free: number | undefined;
    try {
      free = await this.options.memoryForPool?.();
    } catch (error) {
      // Without knowing what fits, start nothing; look again after a back-off.
      this.logger.warn({ err: errorMessage(error) }, 'warm pool cannot tell what fits in the memory budget');
      this.backOff();
      return;
    }
    this.budgetFreeBytes = free;
    this.noteBound(poolBound(this.options.size, free, this.workerBytes));
    const excess = this.ready.splice(this.bound.limit);
    if (excess.length > 0) {
      this.logger.info(
        { count: excess.length, limit: this.bound.limit },
        'giving up idle pool workers the memory budget no longer fits',
      );
    }
    if (Date.now() >= this.retryAt) {
      while (this.ready.length + this.filling < this.bound.limit) {
        this.filling++;
        void this.startOne().finally(() => {
          this.filling--;
          // A new worker (and its measurement) may change what fits.
          this.refill();
        });
      }
    }
    await Promise.all(excess.map((worker) => this.giveUp(worker)));
  }

  /** Log the pool's bound once each time it changes, so an operator sees why the pool is smaller. */
  private noteBound(bound: PoolBound): void {
    const changed = bound.limit !== this.bound.limit || bound.boundedBy !== this.bound.boundedBy;
    this.bound = bound;
    if (!changed && this.boundLogged) return;
    this.boundLogged = true;
    this.logger.info(
      {
        size: this.options.size,
        limit: bound.limit,
        boundedBy: bound.boundedBy,
        budgetFreeBytes: this.budgetFreeBytes,
        workerBytes: this.workerBytes,
        workerBytesMeasured: this.workerBytesMeasured,
      },
      bound.boundedBy === null
        ? `warm pool holds ${bound.limit} worker${bound.limit === 1 ? '' : 's'}`
        : `warm pool holds ${bound.limit} of ${this.options.size} workers: bounded by the ${bound.boundedBy.replace('_', ' ')}`,
    );
  }

  private giveUp(worker: WorkerInfo): Promise<void> {
    const removal = this.runtime.remove(worker.name).then(
      () => undefined,
      (error: unknown) => {
        this.logger.warn({ worker: worker.name, err: errorMessage(error) }, 'could not remove a pool worker');
      },
    );
    const tracked = removal.finally(() => {
      this.removals.delete(tracked);
      this.wakeIfFull();
    });
    this.removals.add(tracked);
    return tracked;
  }

  private isFull(): boolean {
    if (!this.enabled) return true;
    return (
      !this.adjusting &&
      this.filling === 0 &&
      this.removals.size === 0 &&
      this.ready.length >= this.bound.limit
    );
  }

  private wakeIfFull(): void {
    if (this.isFull()) for (const wake of this.waiters.splice(0)) wake();
  }

  private backOff(): void {
    this.failures++;
    // Back off while the engine (or the store) misbehaves, then look again.
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6));
    this.retryAt = Date.now() + delay;
    setTimeout(() => this.refill(), delay).unref();
  }

  private async startOne(): Promise<void> {
    const name = `${this.prefix}${randomBytes(4).toString('hex')}`;
    try {
      await this.runtime.create(workerSpec(name, { [LABELS.kind]: POOL_KIND }, this.options.limits));
      const started = await this.runtime.start(name);
      await this.workers.waitUntilReady(started.endpoint!, {
        timeoutMs: this.options.readyTimeoutMs,
        isAlive: async () => (await this.runtime.inspect(name))?.running === true,
      });
      if (this.stopped) return;
      await this.measure(started);
      this.ready.push(started);
      this.failures = 0;
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not start a pool worker');
      await this.runtime.remove(name).catch(() => undefined);
      this.backOff();
    }
  }

  /** A model-less worker's own rss is what the next pool worker will take too. */
  private async measure(worker: WorkerInfo): Promise<void> {
    try {
      const { rss_bytes: rss } = await this.workers.stats(worker.endpoint!);
      if (!Number.isFinite(rss) || rss <= 0) return;
      this.workerBytes = rss;
      this.workerBytesMeasured = true;
    } catch (error) {
      // Keep counting at the previous figure: a measurement is an improvement, not a need.
      this.logger.debug({ worker: worker.name, err: errorMessage(error) }, 'could not measure a pool worker');
    }
  }
}
