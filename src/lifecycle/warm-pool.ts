/**
 * A warm pool of started, model-less workers (MODELDOCK_WARM_POOL). DEPLOY_CREATE and
 * TEMP take one instead of starting a container: the worker is renamed to the server's
 * deterministic name, so crash recovery and lookups by name work as for any other
 * worker. Its labels stay those of the pool (`modeldock.kind=pool`): with the pool on, a
 * job's container is found through the API (or by name), not by `modeldock.job`.
 *
 * The pool is refilled in the background; leftovers of an earlier router are removed at
 * start-up (they may have been half-started). Off by default.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { LABELS, type Runtime, type WorkerInfo, type WorkerLimits } from '../runtime/runtime.js';
import type { WorkerClient } from '../runtime/worker-client.js';

export interface WarmPoolOptions {
  size: number;
  instance: string;
  limits: WorkerLimits;
  readyTimeoutMs: number;
}

export const POOL_KIND = 'pool';

export class WarmPool {
  private readonly ready: WorkerInfo[] = [];
  private filling = 0;
  private stopped = false;
  private failures = 0;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly runtime: Runtime,
    private readonly workers: WorkerClient,
    private readonly options: WarmPoolOptions,
    private readonly logger: Logger,
  ) {}

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

  status(): { size: number; ready: number; filling: number } {
    return { size: this.enabled ? this.options.size : 0, ready: this.ready.length, filling: this.filling };
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

  /** Resolves when the pool is full (tests, benchmarks). */
  whenFull(): Promise<void> {
    if (!this.enabled || this.ready.length >= this.options.size) return Promise.resolve();
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

  private refill(): void {
    if (this.stopped) return;
    while (this.ready.length + this.filling < this.options.size) {
      this.filling++;
      void this.startOne().finally(() => this.filling--);
    }
  }

  private async startOne(): Promise<void> {
    const name = `${this.prefix}${randomBytes(4).toString('hex')}`;
    try {
      await this.runtime.create({ name, labels: { [LABELS.kind]: POOL_KIND }, limits: this.options.limits });
      const started = await this.runtime.start(name);
      await this.workers.waitUntilReady(started.endpoint!, {
        timeoutMs: this.options.readyTimeoutMs,
        isAlive: async () => (await this.runtime.inspect(name))?.running === true,
      });
      if (this.stopped) return;
      this.ready.push(started);
      this.failures = 0;
      if (this.ready.length >= this.options.size) for (const wake of this.waiters.splice(0)) wake();
    } catch (error) {
      this.failures++;
      this.logger.warn({ err: errorMessage(error) }, 'could not start a pool worker');
      await this.runtime.remove(name).catch(() => undefined);
      // Back off while the engine misbehaves, then try again.
      const delay = Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6));
      setTimeout(() => this.refill(), delay).unref();
    }
  }
}
