/**
 * When a worker collects its garbage in full after unloads. V8 collects its old
 * generation only when that reaches a limit it keeps raising with the heap, so the
 * garbage of every load, unload and request stays resident until then: measured on one
 * worker with 100 models resident, 1,000 load/unload cycles of m-131 left its rss 16-20
 * MiB higher (38 MiB with one inference each), all of it V8's heap (its live objects grew
 * by ~1 KiB a cycle) and all of it given back by a full collection, while the router
 * charges the worker only its runtime as measured idle plus its models' loads
 * (docs/worker.md#the-heap-after-unloads). A collection takes ~15 ms on such a worker,
 * so it is not run per unload (an eviction's unload sits before a waiting load): it runs
 * once the unloads pause for `quietMs`, or `maxDelayMs` after the first one not yet
 * collected when they keep coming (at most one collection that often).
 */

export interface CompactionTiming {
  /** Collect once no unload came for this long (ms). */
  quietMs: number;
  /** Collect at the latest this long after the first unload not yet collected (ms). */
  maxDelayMs: number;
}

export const DEFAULT_COMPACTION_TIMING: CompactionTiming = { quietMs: 200, maxDelayMs: 1_000 };

export class HeapCompaction {
  private quiet: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;

  /** `collect`: the full collection (it runs between measured loads: model-registry.ts). */
  constructor(
    private readonly collect: () => void,
    private readonly timing: CompactionTiming = DEFAULT_COMPACTION_TIMING,
  ) {}

  /** An unload freed memory: collect after the next pause, or by the deadline. */
  unloaded(): void {
    if (this.quiet) clearTimeout(this.quiet);
    this.quiet = setTimeout(() => this.run(), this.timing.quietMs);
    this.deadline ??= setTimeout(() => this.run(), this.timing.maxDelayMs);
    // A pending collection never keeps a stopping worker alive.
    this.quiet.unref();
    this.deadline.unref();
  }

  /** Cancel a pending collection (the worker is closing). */
  close(): void {
    clearTimeout(this.quiet);
    clearTimeout(this.deadline);
    this.quiet = this.deadline = undefined;
  }

  private run(): void {
    this.close();
    this.collect();
  }
}
