/**
 * Bounds against exhaustion of the engine by creations:
 * - at most `concurrency` server creations run at once; the engine serializes much of a
 *   container create/start anyway, so more in parallel only makes each one slower;
 * - at most `queue` more wait for a slot (in arrival order); past that a creation is
 *   refused with 429 at once instead of piling up;
 * - at most `maxServers` live servers (job and TEMP; warm-pool workers are counted apart):
 *   checked together with recording the new server, one at a time, so concurrent
 *   creations cannot overshoot it.
 */
import { QuotaExceededError } from '../errors.js';
import { KeyedMutex } from '../keyed-mutex.js';

export interface CreationLimits {
  maxServers: number;
  concurrency: number;
  queue: number;
}

export interface CreationStatus extends CreationLimits {
  liveServers: number;
  creating: number;
  queued: number;
}

export class CreationGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly recording = new KeyedMutex();

  constructor(
    readonly limits: CreationLimits,
    /** Live job and TEMP servers in the store now. */
    private readonly liveServers: () => Promise<number>,
  ) {}

  /** Runs `work` in a creation slot, waiting for one if needed; 429 when the queue is full. */
  async admit<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.concurrency) {
      if (this.waiting.length >= this.limits.queue) {
        throw new QuotaExceededError(
          `${this.limits.concurrency} server creations are running and ${this.waiting.length} waiting ` +
            `(MODELDOCK_CREATE_CONCURRENCY, MODELDOCK_CREATE_QUEUE); retry later`,
          { details: { limit: 'create_queue', create_queue: this.limits.queue } },
        );
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      // The slot passes straight to the next waiter, so `running` never dips and overshoots.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /**
   * Records a new server unless the live servers are at the limit: the count and the
   * record happen one at a time, so two creations never both take the last place. A
   * shared server passes the check of its own bound instead.
   */
  async record<T>(
    insert: () => Promise<T>,
    assertRoom: () => Promise<void> = () => this.assertRoom(),
  ): Promise<T> {
    return this.recording.run('servers', async () => {
      await assertRoom();
      return insert();
    });
  }

  /**
   * 429 when `count` more servers (a job's replicas) would pass the limit. Asked before
   * an operation that would create servers is even recorded, so a refused request leaves
   * nothing behind; `record` asks again, atomically, for the race.
   */
  async assertRoom(count = 1): Promise<void> {
    const live = await this.liveServers();
    if (live + count > this.limits.maxServers) {
      throw new QuotaExceededError(
        `${live} live servers${count > 1 ? ` and ${count} more asked for` : ''}: MODELDOCK_MAX_SERVERS=${this.limits.maxServers} ` +
          (count > 1 ? 'would be passed' : 'is reached') +
          '; terminate a job (or raise the limit) to create another',
        { details: { limit: 'max_servers', max_servers: this.limits.maxServers } },
      );
    }
  }

  async status(): Promise<CreationStatus> {
    return {
      ...this.limits,
      liveServers: await this.liveServers(),
      creating: this.running,
      queued: this.waiting.length,
    };
  }
}
