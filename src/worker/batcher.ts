/**
 * The dynamic batcher of one loaded model: the queue logic only (what runs is the
 * caller's `execute`), so it is tested without a model.
 *
 * One batch runs at a time. A request for an idle model runs at once, unless a queue
 * delay is configured and the batcher has seen company come (below). Requests arriving
 * while a batch runs wait; when it ends, the oldest waiting request and every later one
 * with the same key (the same shapes beyond the batch dimension, datatypes, requested
 * outputs and parameters) run next as one batch of at most `maxBatchSize` rows, cut at
 * a preferred batch size when one fits. A request with no key (it cannot be stacked)
 * or more rows than `maxBatchSize` runs alone, in its turn.
 *
 * The queue delay (Triton's `max_queue_delay_microseconds`) is how long the oldest
 * request may wait for company while the model is idle; a batch reaching its target
 * (the largest preferred size, else `maxBatchSize`) goes at once. Fixed (`adaptive`
 * false), every batch below its target waits the whole delay, as Triton's does: a lone
 * client pays it on every request. Adaptive, the wait starts at zero and follows the
 * traffic within the delay:
 * - requests that arrive while a batch below its target runs, soon enough after its
 *   oldest request that a wait within the delay would have taken them along, raise the
 *   wait to what would have taken them (company came: a wait pays);
 * - a wait that ran out with nobody joining halves it (a lone request does not wait for
 *   company that never comes), down to zero;
 * - a wait that ran out with company and missed nobody shrinks it towards 1.5 times the
 *   time the last request needed to join, by at most half (a batch that fills quickly
 *   waits less).
 * A closed-loop client alone never sends a request while its previous one runs, so it
 * never raises the wait: batching adds no latency at low load.
 */
import { TooManyRequestsError } from '../errors.js';

export interface BatchPolicy {
  /** Most rows in one batch. */
  maxBatchSize: number;
  /** Ascending; a batch is cut at the largest that fits when there is one. */
  preferredBatchSizes: number[];
  /** The longest the oldest request waits for company while the model is idle, in ms. */
  maxQueueDelayMs: number;
  /** Follow the traffic within the delay instead of always waiting it out. */
  adaptive: boolean;
  /** Most requests waiting (0: unbounded); one more is refused. */
  maxQueueSize: number;
}

/** A request that left the queue before its batch ran (client gone, deadline passed). */
export class CancelledError extends Error {
  constructor() {
    super('the request was cancelled before it ran');
    this.name = 'CancelledError';
  }
}

export interface Batched<R> {
  result: R;
  /** When its batch started (the `now` clock), for the queue time in the statistics. */
  dispatchedAt: number;
}

interface Waiting<T, R> {
  item: T;
  key: string | null;
  rows: number;
  enqueuedAt: number;
  resolve: (value: Batched<R>) => void;
  reject: (error: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** What the running batch tells the adaptive wait when it ends. */
interface Running {
  oldestAt: number;
  belowTarget: boolean;
  /** It waited in a window that ran out (rather than filling up or not waiting). */
  windowRanOut: boolean;
  /** Requests that joined while the idle model waited (none: the wait bought nothing). */
  joinedInWindow: number;
  /** Latest arrival after the oldest request among those that joined it, in ms. */
  lastJoinLagMs: number;
  /** Longest lag (≤ the delay) of a request that arrived while it ran, in ms. */
  missedLagMs: number;
}

/** Runs a batch; one result per item, in order. Throwing fails every item of the batch. */
export type ExecuteBatch<T, R> = (items: T[]) => Promise<R[]>;

/** Below this a wait is zero: a timer cannot keep it, and nothing gathers in it. */
const SMALLEST_WAIT_MS = 0.02;

export class Batcher<T, R> {
  private readonly queue: Waiting<T, R>[] = [];
  private running: Running | undefined;
  private window:
    | {
        deadline: number;
        /** When the idle model started waiting: requests queued later joined because of the wait. */
        openedAt: number;
        timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
        immediate: boolean;
      }
    | undefined;
  private adaptiveWaitMs = 0;
  private readonly target: number;

  constructor(
    private readonly policy: BatchPolicy,
    private readonly execute: ExecuteBatch<T, R>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.target = policy.preferredBatchSizes.at(-1) ?? policy.maxBatchSize;
  }

  /** The wait in force for the next idle batch, in ms. */
  get waitMs(): number {
    return this.policy.adaptive ? this.adaptiveWaitMs : this.policy.maxQueueDelayMs;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Queue `item` (`rows` along the batch dimension; `key` null: never merged). Resolves
   * with its own result once its batch ran; rejects with the batch's error, with
   * CancelledError when `signal` aborts before the batch starts, or at once with
   * TooManyRequestsError when the queue is full.
   */
  submit(item: T, key: string | null, rows: number, signal?: AbortSignal): Promise<Batched<R>> {
    if (signal?.aborted) return Promise.reject(new CancelledError());
    if (this.policy.maxQueueSize > 0 && this.queue.length >= this.policy.maxQueueSize) {
      return Promise.reject(
        new TooManyRequestsError(
          `the model's queue is full (${this.policy.maxQueueSize} requests waiting); try again shortly`,
        ),
      );
    }
    const now = this.now();
    const running = this.running;
    if (running?.belowTarget) {
      const lag = now - running.oldestAt;
      if (lag <= this.policy.maxQueueDelayMs) running.missedLagMs = Math.max(running.missedLagMs, lag);
    }
    return new Promise<Batched<R>>((resolve, reject) => {
      const waiting: Waiting<T, R> = { item, key, rows, enqueuedAt: now, resolve, reject };
      if (signal) {
        waiting.signal = signal;
        waiting.onAbort = () => {
          const at = this.queue.indexOf(waiting);
          if (at < 0) return; // already running: its result is simply not wanted
          this.queue.splice(at, 1);
          reject(new CancelledError());
          if (this.queue.length === 0) this.closeWindow();
        };
        signal.addEventListener('abort', waiting.onAbort, { once: true });
      }
      this.queue.push(waiting);
      this.schedule();
    });
  }

  /** Start the next batch if the model is idle and the head of the queue need not wait. */
  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    const head = this.queue[0]!;
    const wait = this.waitMs;
    const belowTarget = this.mergeable(head) && this.rowsFor(head) < this.target;
    if (wait >= SMALLEST_WAIT_MS && belowTarget) {
      const deadline = head.enqueuedAt + wait;
      const remaining = deadline - this.now();
      if (remaining > 0) {
        this.armWindow(deadline, remaining);
        return;
      }
    }
    // A window that closes below the target ran out; one that filled did not.
    const ranOut = this.window !== undefined && belowTarget;
    const openedAt = this.window?.openedAt ?? Infinity;
    this.closeWindow();
    this.dispatch(ranOut, openedAt);
  }

  /**
   * Wake at the deadline. Timers keep whole milliseconds, so the last fraction is
   * waited out with setImmediate (the model is idle meanwhile: nothing else needs the CPU).
   */
  private armWindow(deadline: number, remaining: number): void {
    if (this.window?.timer && this.window.deadline === deadline) return; // already set
    this.clearTimer();
    const wake = () => {
      if (this.window) this.window.timer = undefined;
      this.schedule();
    };
    const immediate = remaining < 1;
    const timer = immediate ? setImmediate(wake) : setTimeout(wake, Math.floor(remaining));
    this.window = { deadline, openedAt: this.window?.openedAt ?? this.now(), timer, immediate };
  }

  private clearTimer(): void {
    const window = this.window;
    if (!window?.timer) return;
    if (window.immediate) clearImmediate(window.timer as NodeJS.Immediate);
    else clearTimeout(window.timer as NodeJS.Timeout);
  }

  private closeWindow(): void {
    this.clearTimer();
    this.window = undefined;
  }

  private mergeable(entry: Waiting<T, R>): boolean {
    return entry.key !== null && entry.rows <= this.policy.maxBatchSize;
  }

  /** Rows the head's batch would have now (at most maxBatchSize). */
  private rowsFor(head: Waiting<T, R>): number {
    let rows = 0;
    for (const entry of this.queue) {
      if (entry.key !== head.key) continue;
      if (rows + entry.rows > this.policy.maxBatchSize) break;
      rows += entry.rows;
    }
    return rows;
  }

  /** Take the head's batch out of the queue: same key, in order, cut at a preferred size. */
  private take(): Waiting<T, R>[] {
    const head = this.queue[0]!;
    if (!this.mergeable(head)) return this.queue.splice(0, 1);
    const chosen: number[] = [];
    let rows = 0;
    for (let i = 0; i < this.queue.length; i++) {
      const entry = this.queue[i]!;
      if (entry.key !== head.key) continue;
      if (rows + entry.rows > this.policy.maxBatchSize) break;
      rows += entry.rows;
      chosen.push(i);
    }
    const preferred = this.policy.preferredBatchSizes;
    if (preferred.length > 0 && !preferred.includes(rows)) {
      // The longest prefix whose rows are a preferred size; the rest waits for the next batch.
      let sum = 0;
      let cut = 0;
      chosen.forEach((index, n) => {
        sum += this.queue[index]!.rows;
        if (preferred.includes(sum)) cut = n + 1;
      });
      if (cut > 0) chosen.length = cut;
    }
    const batch = chosen.map((i) => this.queue[i]!);
    for (let n = chosen.length - 1; n >= 0; n--) this.queue.splice(chosen[n]!, 1);
    return batch;
  }

  private dispatch(windowRanOut: boolean, windowOpenedAt: number): void {
    const batch = this.take();
    const dispatchedAt = this.now();
    let rows = 0;
    let lastJoin = batch[0]!.enqueuedAt;
    let joinedInWindow = 0;
    for (const entry of batch) {
      rows += entry.rows;
      lastJoin = Math.max(lastJoin, entry.enqueuedAt);
      if (entry.enqueuedAt >= windowOpenedAt) joinedInWindow++;
      if (entry.onAbort) entry.signal!.removeEventListener('abort', entry.onAbort);
    }
    const running: Running = {
      oldestAt: batch[0]!.enqueuedAt,
      belowTarget: this.mergeable(batch[0]!) && rows < this.target,
      windowRanOut,
      joinedInWindow,
      lastJoinLagMs: lastJoin - batch[0]!.enqueuedAt,
      missedLagMs: 0,
    };
    this.running = running;
    let results: Promise<R[]>;
    try {
      results = this.execute(batch.map((entry) => entry.item));
    } catch (error) {
      results = Promise.reject(error);
    }
    // The next batch starts before this one's requests are answered: the model is free now.
    const finished = () => {
      this.running = undefined;
      this.adapt(running);
      this.schedule();
    };
    results.then(
      (values) => {
        finished();
        batch.forEach((entry, i) => entry.resolve({ result: values[i]!, dispatchedAt }));
      },
      (error: unknown) => {
        finished();
        batch.forEach((entry) => entry.reject(error));
      },
    );
  }

  private adapt(batch: Running): void {
    if (!this.policy.adaptive) return;
    const bound = this.policy.maxQueueDelayMs;
    if (batch.missedLagMs > 0) {
      this.adaptiveWaitMs = Math.min(bound, Math.max(this.adaptiveWaitMs, batch.missedLagMs));
    } else if (batch.windowRanOut && batch.joinedInWindow === 0) {
      this.adaptiveWaitMs /= 2;
    } else if (batch.windowRanOut) {
      const needed = 1.5 * batch.lastJoinLagMs;
      this.adaptiveWaitMs = Math.min(this.adaptiveWaitMs, Math.max(this.adaptiveWaitMs / 2, needed));
    }
    if (this.adaptiveWaitMs < SMALLEST_WAIT_MS) this.adaptiveWaitMs = 0;
  }
}
