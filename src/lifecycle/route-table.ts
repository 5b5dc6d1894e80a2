/**
 * The routes inference takes: one per ready server (replica) of a job, each counting
 * the requests forwarded on it and not yet answered. A request for a job takes the
 * less busy of two of its routes picked at random (power of two choices, as Knative's
 * activator and Ray Serve balance): close to the least-loaded replica without scanning
 * all of them, and without herding every request onto the one that looked idle.
 *
 * Why a counter on the route: a model may leave memory (unload, eviction, termination,
 * scale-down) only once nobody is using it. Whatever takes it away first withdraws the
 * route (new requests then go to the job's other replicas, or wait for the job's next
 * state instead of reaching a worker that is about to refuse them) and then waits for
 * the count to reach zero. On the hot path this costs an increment and a decrement per
 * request on an object the request already holds: no map, no promise, no timer. Only a
 * drain creates a promise, once per transition.
 *
 * The count also feeds the autoscaler: each route integrates its in-flight count over
 * time, so the average concurrency between two samples is exact even for requests far
 * shorter than the sampling interval.
 */
/** Where inference for a job goes: the worker endpoint and the model name it serves. */
export interface Route {
  jobId: string;
  serverId: string;
  endpoint: string;
  modelName: string;
  /** `/v2/models/<model name>` on the worker, computed once per route. */
  modelPath: string;
}

export class RouteEntry implements Route {
  /** Requests that took this route and have not finished. */
  inFlight = 0;
  /** Withdrawn routes take no new requests; the ones under way finish on it. */
  withdrawn = false;
  /** When a request last took the route (ms since the epoch): the memory policy's LRU clock. */
  lastUsedMs = Date.now();
  readonly modelPath: string;
  private onIdle: (() => void) | undefined;
  /** In-flight requests integrated over time (request·ms) since the last sample. */
  private busyArea = 0;
  private changedAt = this.lastUsedMs;
  private sampledAt = this.lastUsedMs;

  constructor(
    readonly jobId: string,
    readonly serverId: string,
    readonly endpoint: string,
    readonly modelName: string,
    /**
     * Whether the worker accepts the binary tensor extension (its serving runtime's
     * `binaryTensors`); without it the router translates binary requests to JSON.
     */
    readonly binaryTensors = true,
  ) {
    this.modelPath = `/v2/models/${encodeURIComponent(modelName)}`;
  }

  /** A request takes the route; it must call release() exactly once when it is done. */
  acquire(): this {
    const now = Date.now();
    this.busyArea += this.inFlight * (now - this.changedAt);
    this.changedAt = now;
    this.inFlight++;
    this.lastUsedMs = now;
    return this;
  }

  release(): void {
    const now = Date.now();
    this.busyArea += this.inFlight * (now - this.changedAt);
    this.changedAt = now;
    if (--this.inFlight === 0 && this.onIdle !== undefined) this.onIdle();
  }

  /**
   * The average number of requests in flight on this route since the previous sample
   * (or since it opened), and a new sampling period begins.
   */
  sampleConcurrency(now = Date.now()): number {
    const area = this.busyArea + this.inFlight * (now - this.changedAt);
    const span = now - this.sampledAt;
    this.busyArea = 0;
    this.changedAt = now;
    this.sampledAt = now;
    return span > 0 ? area / span : this.inFlight;
  }

  /**
   * Resolves once no request is in flight on the route, or after `timeoutMs`, with the
   * number of requests still in flight then (0: drained).
   */
  drain(timeoutMs: number): Promise<number> {
    if (this.inFlight <= 0) return Promise.resolve(0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.onIdle = undefined;
        resolve(this.inFlight);
      }, timeoutMs);
      this.onIdle = () => {
        clearTimeout(timer);
        this.onIdle = undefined;
        resolve(0);
      };
    });
  }
}

export class RouteTable {
  /** Per job, its routes that take requests (withdrawn ones are gone from here). */
  private readonly routes = new Map<string, RouteEntry[]>();
  /** Last use of jobs whose routes are all gone (a route itself keeps it while it exists). */
  private readonly lastUsedOfWithdrawn = new Map<string, number>();

  /** The job's routes that take requests now (one per ready replica). */
  list(jobId: string): readonly RouteEntry[] {
    return this.routes.get(jobId) ?? [];
  }

  /** Jobs that have at least one route. */
  jobIds(): IterableIterator<string> {
    return this.routes.keys();
  }

  /** The route of one server of the job, if it takes requests. */
  forServer(jobId: string, serverId: string): RouteEntry | undefined {
    return this.routes.get(jobId)?.find((entry) => entry.serverId === serverId);
  }

  /** The route a request may take now (counted), or undefined when the job has none. */
  acquire(jobId: string): RouteEntry | undefined {
    return this.pick(jobId)?.acquire();
  }

  /**
   * The less busy of two of the job's routes chosen at random (power of two choices);
   * the only one when there is one. Not counted: acquire() counts.
   */
  pick(jobId: string): RouteEntry | undefined {
    const entries = this.routes.get(jobId);
    if (entries === undefined) return undefined;
    const n = entries.length;
    if (n === 1) return entries[0];
    const i = Math.floor(Math.random() * n);
    // A second index distinct from the first: draw from the n-1 others.
    let j = Math.floor(Math.random() * (n - 1));
    if (j >= i) j++;
    const a = entries[i]!;
    const b = entries[j]!;
    return b.inFlight < a.inFlight ? b : a;
  }

  /** Add a server's route; one the same server had before is withdrawn. */
  set(entry: RouteEntry): RouteEntry {
    const entries = this.routes.get(entry.jobId) ?? [];
    const index = entries.findIndex((other) => other.serverId === entry.serverId);
    if (index >= 0) {
      const previous = entries[index]!;
      if (previous !== entry) previous.withdrawn = true;
      entries[index] = entry;
    } else {
      entries.push(entry);
    }
    this.routes.set(entry.jobId, entries);
    return entry;
  }

  /** Take all of the job's routes away from new requests; returns them (for a drain). */
  withdraw(jobId: string): RouteEntry[] {
    const entries = this.routes.get(jobId);
    if (!entries) return [];
    this.routes.delete(jobId);
    for (const entry of entries) entry.withdrawn = true;
    this.lastUsedOfWithdrawn.set(jobId, Math.max(...entries.map((entry) => entry.lastUsedMs)));
    return entries;
  }

  /**
   * Take one server's route away from new requests (the job's other replicas keep
   * theirs); returns it (for a drain) if there was one.
   */
  withdrawServer(jobId: string, serverId: string): RouteEntry | undefined {
    const entries = this.routes.get(jobId);
    const index = entries?.findIndex((entry) => entry.serverId === serverId) ?? -1;
    if (!entries || index < 0) return undefined;
    if (entries.length === 1) return this.withdraw(jobId)[0];
    const [entry] = entries.splice(index, 1);
    entry!.withdrawn = true;
    return entry;
  }

  /** When a request last took one of the job's routes (ms since the epoch), withdrawn or not. */
  lastUsedAt(jobId: string): number | undefined {
    const entries = this.routes.get(jobId);
    if (!entries) return this.lastUsedOfWithdrawn.get(jobId);
    let last = 0;
    for (const entry of entries) if (entry.lastUsedMs > last) last = entry.lastUsedMs;
    return last;
  }
}
