/**
 * A warm pool of started, model-less workers of one serving runtime (MODELDOCK_WARM_POOL;
 * warm-pools.ts keeps one per catalog entry). DEPLOY_CREATE and TEMP take one instead of
 * starting a container: the worker is renamed to the server's deterministic name, so
 * crash recovery and lookups by name work as for any other worker. Its labels stay those
 * of the pool (`modeldock.kind=pool`, and the entry's `modeldock.serving-runtime`): with
 * the pool on, a job's container is found through the API (or by name), not by
 * `modeldock.job`.
 *
 * A foreign server (Triton, MLServer, an operator's entry) is started with an empty model
 * repository; the server steps put the job's model into it when they take one
 * (server-steps.ts). One that holds a model already is never handed over: it is removed.
 *
 * Under a memory budget the pool is bounded by it: every idle pool worker counts at the
 * memory it was measured to take, and the pool holds only as many as the budget leaves
 * next to the loaded models — min(configured size, what fits). A pool of foreign servers
 * is also bounded by the room MODELDOCK_MAX_SERVERS leaves (`serverRoom`). The pool does
 * not know about models: it asks how much is left, whenever something may have changed
 * (a worker taken, started, measured or lost, memory released).
 *
 * The pool converges in the background, one pass at a time; leftovers of an earlier
 * router are removed at start-up (they may have been half-started). Off by default.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { LABELS, type Runtime, type WorkerInfo, type WorkerLimits } from '../runtime/runtime.js';
import type { WorkerClient } from '../runtime/worker-client.js';
import { DEFAULT_SERVING_RUNTIME, type ServingRuntime } from './serving-runtimes.js';
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
  /** The entry whose servers the pool holds; absent: modeldock's own worker. */
  serving?: ServingRuntime;
  /**
   * Servers the pool may still hold under MODELDOCK_MAX_SERVERS (the limit minus the live
   * servers and the other pools' idle ones), or undefined when the pool is counted apart.
   */
  serverRoom?: () => Promise<number | undefined>;
}

/** A worker as the pool recognises its own: by name and labels (a WorkerInfo or a runtime event). */
export interface NamedWorker {
  name: string;
  labels: Record<string, string>;
}

export const POOL_KIND = 'pool';

/**
 * What an idle pool worker is counted at before one has been measured. A model-less
 * worker measures about 87 MiB rss (Node 20 with ONNX Runtime warmed at boot, x86-64);
 * the estimate is half as much again, so a pool sized by it never overshoots the budget.
 */
export const POOL_WORKER_ESTIMATE_BYTES = 128 * 1024 ** 2;

export type PoolBoundReason = 'memory_budget' | 'max_servers';

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

/** The tighter of a bound and the room MODELDOCK_MAX_SERVERS leaves (undefined: not counted there). */
export function withServerRoom(bound: PoolBound, room: number | undefined): PoolBound {
  if (room === undefined || room >= bound.limit) return bound;
  return { limit: Math.max(0, room), boundedBy: 'max_servers' };
}

export interface PoolStatus extends PoolBound {
  /** The serving runtime (catalog entry) whose servers the pool holds. */
  runtime: string;
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

  /** The catalog entry whose servers the pool holds. */
  get entry(): string {
    return this.options.serving?.name ?? DEFAULT_SERVING_RUNTIME;
  }

  /** Whether the pool holds foreign servers, which get their model through their guard. */
  get foreign(): boolean {
    return this.options.serving !== undefined && !this.options.serving.modeldockWorker;
  }

  get prefix(): string {
    return this.foreign ? `${this.options.instance}-pool-${this.entry}-` : `${this.options.instance}-pool-`;
  }

  /** Whether a worker belongs to the pool (and so is the pool's business, not the reconciler's). */
  owns(worker: NamedWorker): boolean {
    // modeldock's pool workers carry no serving-runtime label (they did not before there were others).
    const entry = worker.labels[LABELS.servingRuntime] ?? DEFAULT_SERVING_RUNTIME;
    return (
      worker.labels[LABELS.kind] === POOL_KIND && worker.name.startsWith(this.prefix) && entry === this.entry
    );
  }

  /** How many idle workers the pool holds or is starting (what it counts against MODELDOCK_MAX_SERVERS). */
  get held(): number {
    return this.ready.length + this.filling;
  }

  /**
   * A pool worker died or went away (a runtime event, or a reconcile pass that no longer
   * finds it running): it is dropped and removed, and the pool starts another.
   */
  lost(worker: NamedWorker): void {
    const index = this.ready.findIndex((w) => w.name === worker.name);
    if (index === -1) return;
    const [gone] = this.ready.splice(index, 1);
    this.logger.warn({ worker: worker.name, runtime: this.entry }, 'a pool worker is gone; starting another');
    void this.giveUp(gone!).finally(() => this.refill());
  }

  status(): PoolStatus {
    const bound = this.enabled ? this.bound : { limit: 0, boundedBy: null };
    return {
      runtime: this.entry,
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
    await this.removeLeftovers(await this.runtime.list());
    this.refill();
  }

  /** Pool workers of an earlier router (they may have been half-started) are removed. */
  private async removeLeftovers(workers: WorkerInfo[]): Promise<void> {
    for (const worker of workers) {
      if (this.owns(worker)) await this.runtime.remove(worker.name);
    }
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
      // A foreign server's replacement waits until the one taken has loaded its model (the
      // server steps refill then): two Python servers starting and loading at once on the
      // same CPUs slow the DEPLOY_CREATE down (bench/serving-runtimes). modeldock's workers
      // start in a fraction of that, and are replaced at once.
      if (!this.foreign) this.refill();
      try {
        if (this.foreign && !(await this.holdsNoModel(worker))) {
          this.refill();
          continue;
        }
        const renamed = await this.runtime.rename!(worker.name, name);
        if (renamed.running && renamed.endpoint) return renamed;
      } catch (error) {
        this.logger.warn({ worker: worker.name, err: errorMessage(error) }, 'pool worker unusable; dropped');
      }
      await this.runtime.remove(worker.name).catch(() => undefined);
      this.refill();
    }
    return undefined;
  }

  /**
   * A pooled foreign server is handed to a job only while it holds no model: one that
   * reports a model (anyone with its secret could have loaded one) is removed instead,
   * since a model's memory and files may stay with a server after an unload.
   */
  private async holdsNoModel(worker: WorkerInfo): Promise<boolean> {
    const loaded = (await this.workers.index(worker.endpoint!)).filter((entry) => entry.state === 'READY');
    if (loaded.length === 0) return true;
    this.logger.warn(
      { worker: worker.name, runtime: this.entry, models: loaded.map((entry) => entry.name) },
      'a pool server holds a model; removed instead of handed over',
    );
    await this.runtime.remove(worker.name).catch(() => undefined);
    return false;
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
    let room: number | undefined;
    try {
      room = await this.options.serverRoom?.();
    } catch (error) {
      this.logger.warn(
        { err: errorMessage(error) },
        'warm pool cannot tell the room MODELDOCK_MAX_SERVERS leaves',
      );
      this.backOff();
      return;
    }
    this.budgetFreeBytes = free;
    this.noteBound(withServerRoom(poolBound(this.options.size, free, this.workerBytes), room));
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
        ? `warm pool of ${this.entry} holds ${bound.limit} worker${bound.limit === 1 ? '' : 's'}`
        : `warm pool of ${this.entry} holds ${bound.limit} of ${this.options.size} workers: bounded by ${bound.boundedBy === 'max_servers' ? 'MODELDOCK_MAX_SERVERS' : 'the memory budget'}`,
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
      const labels: Record<string, string> = { [LABELS.kind]: POOL_KIND };
      if (this.foreign) labels[LABELS.servingRuntime] = this.entry;
      await this.runtime.create(workerSpec(name, labels, this.options.limits, this.options.serving));
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

  /** A model-less worker's own memory is what the next pool worker will take too. */
  private async measure(worker: WorkerInfo): Promise<void> {
    try {
      // A foreign server reports nothing itself: the runtime measures it (its process tree, its container).
      const rss = this.foreign
        ? ((await this.runtime.stats(worker.name))?.memoryBytes ?? 0)
        : (await this.workers.stats(worker.endpoint!)).rss_bytes;
      if (!Number.isFinite(rss) || rss <= 0) return;
      this.workerBytes = rss;
      this.workerBytesMeasured = true;
    } catch (error) {
      // Keep counting at the previous figure: a measurement is an improvement, not a need.
      this.logger.debug({ worker: worker.name, err: errorMessage(error) }, 'could not measure a pool worker');
    }
  }
}
