/**
 * The warm pools, one per serving runtime an operator sizes in MODELDOCK_WARM_POOL
 * (warm-pool.ts is one pool): modeldock's own worker's, and one per foreign entry
 * (`mlserver=1`, `triton=1`). DEPLOY_CREATE and TEMP take from the pool of the entry that
 * serves the job's model. Together they answer to the memory budget (each pool is left
 * what the others do not hold), and the foreign pools to MODELDOCK_MAX_SERVERS: a pooled
 * foreign server holds a Python interpreter and its libraries, so the idle ones fill only
 * the room the live servers leave (modeldock's worker pool is counted apart, as before).
 */
import type { Logger } from 'pino';
import { InvalidInputError } from '../errors.js';
import type { Runtime, WorkerInfo, WorkerLimits } from '../runtime/runtime.js';
import type { WorkerClient } from '../runtime/worker-client.js';
import { DEFAULT_SERVING_RUNTIME, type ServingRuntime, type ServingRuntimes } from './serving-runtimes.js';
import { WarmPool, type NamedWorker, type PoolStatus } from './warm-pool.js';

export interface WarmPoolsOptions {
  /** modeldock's own worker's pool size (0: off). */
  size: number;
  /** Foreign entries' pool sizes by entry name. */
  runtimes?: Record<string, number>;
  instance: string;
  limits: WorkerLimits;
  readyTimeoutMs: number;
  /** What the memory budget leaves next to the models for all idle pool workers; undefined: no budget. */
  memoryForPool?: () => Promise<number | undefined>;
  /** MODELDOCK_MAX_SERVERS minus the live servers now. */
  serverRoom: () => Promise<number>;
}

/** `GET /v1/pool`: modeldock's worker pool as before, and every pool by entry. */
export interface PoolsStatus extends PoolStatus {
  runtimes: PoolStatus[];
}

export class WarmPools {
  private readonly own: WarmPool;
  private readonly foreign: WarmPool[] = [];

  constructor(
    runtime: Runtime,
    workers: WorkerClient,
    catalog: ServingRuntimes | undefined,
    private readonly options: WarmPoolsOptions,
    logger: Logger,
  ) {
    const common = {
      instance: options.instance,
      limits: options.limits,
      readyTimeoutMs: options.readyTimeoutMs,
    };
    const own: WarmPool = new WarmPool(
      runtime,
      workers,
      { ...common, size: options.size, ...this.memoryOption(() => own) },
      logger,
    );
    this.own = own;
    for (const [name, size] of Object.entries(options.runtimes ?? {})) {
      const serving = foreignEntry(catalog, name);
      if (size === 0) continue;
      if (!catalog!.startable(serving)) {
        logger.warn(
          `MODELDOCK_WARM_POOL: ${name} cannot be started on the ${runtime.kind} runtime; its pool is off`,
        );
        continue;
      }
      const pool: WarmPool = new WarmPool(
        runtime,
        workers,
        {
          ...common,
          size,
          serving,
          ...this.memoryOption(() => pool),
          // Counted in MODELDOCK_MAX_SERVERS with the live servers and the other foreign pools.
          serverRoom: async () =>
            (await options.serverRoom()) -
            this.foreign.filter((p) => p !== pool).reduce((sum, p) => sum + p.held, 0),
        },
        logger,
      );
      this.foreign.push(pool);
    }
  }

  /** Under a memory budget, each pool is left what the budget leaves minus what the other pools hold. */
  private memoryOption(self: () => WarmPool): { memoryForPool?: () => Promise<number | undefined> } {
    const memoryForPool = this.options.memoryForPool;
    if (!memoryForPool) return {};
    return {
      memoryForPool: async () => {
        const free = await memoryForPool();
        if (free === undefined) return undefined;
        return free - this.all.filter((p) => p !== self()).reduce((sum, p) => sum + p.heldBytes(), 0);
      },
    };
  }

  private get all(): WarmPool[] {
    return [this.own, ...this.foreign];
  }

  /** The pool of a serving runtime (modeldock's own when none is named), if it has one. */
  private poolOf(serving: ServingRuntime | undefined): WarmPool | undefined {
    if (!serving || serving.modeldockWorker) return this.own;
    return this.foreign.find((pool) => pool.entry === serving.name);
  }

  status(): PoolsStatus {
    return { ...this.own.status(), runtimes: this.all.map((pool) => pool.status()) };
  }

  heldBytes(): number {
    return this.all.reduce((sum, pool) => sum + pool.heldBytes(), 0);
  }

  async start(): Promise<void> {
    for (const pool of this.all) await pool.start();
  }

  stop(): void {
    for (const pool of this.all) pool.stop();
  }

  async whenFull(): Promise<void> {
    await Promise.all(this.all.map((pool) => pool.whenFull()));
  }

  /** A started worker of the entry's pool under `name`, or undefined when it has none ready. */
  async take(name: string, serving?: ServingRuntime): Promise<WorkerInfo | undefined> {
    return this.poolOf(serving)?.take(name);
  }

  /** Give up idle workers until all pools together hold at most `maxBytes`; foreign servers go first. */
  async releaseDownTo(maxBytes: number): Promise<number> {
    let given = 0;
    for (const pool of [...this.foreign, this.own]) {
      const others = this.heldBytes() - pool.heldBytes();
      given += await pool.releaseDownTo(Math.max(0, maxBytes - others));
    }
    return given;
  }

  refill(): void {
    for (const pool of this.all) pool.refill();
  }

  owns(worker: NamedWorker): boolean {
    return this.all.some((pool) => pool.owns(worker));
  }

  /**
   * A pool worker died or went away (a runtime event), or a reconcile pass found it no
   * longer running: its pool removes it and starts another.
   */
  lost(worker: NamedWorker): void {
    for (const pool of this.all) if (pool.owns(worker)) pool.lost(worker);
  }
}

/** The catalog entry a MODELDOCK_WARM_POOL item names; an unknown one stops the start. */
function foreignEntry(catalog: ServingRuntimes | undefined, name: string): ServingRuntime {
  const entry = catalog?.entries.find((e) => e.name === name);
  if (!entry) {
    throw new InvalidInputError(
      `MODELDOCK_WARM_POOL names ${name}, which is not in the serving-runtime catalog (${(catalog?.entries ?? []).map((e) => e.name).join(', ') || DEFAULT_SERVING_RUNTIME})`,
    );
  }
  return entry;
}
