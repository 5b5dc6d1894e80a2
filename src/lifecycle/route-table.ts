/**
 * The routes inference takes: one per job whose server is ready, each counting the
 * requests forwarded on it and not yet answered.
 *
 * Why a counter on the route: a model may leave memory (unload, eviction, termination)
 * only once nobody is using it. Whatever takes it away first withdraws the route (new
 * requests then wait for the job's next state instead of reaching a worker that is about
 * to refuse them) and then waits for the count to reach zero. On the hot path this costs
 * an increment and a decrement per request on an object the request already holds: no
 * map, no promise, no timer. Only a drain creates a promise, once per transition.
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

  constructor(
    readonly jobId: string,
    readonly serverId: string,
    readonly endpoint: string,
    readonly modelName: string,
  ) {
    this.modelPath = `/v2/models/${encodeURIComponent(modelName)}`;
  }

  /** A request takes the route; it must call release() exactly once when it is done. */
  acquire(): this {
    this.inFlight++;
    this.lastUsedMs = Date.now();
    return this;
  }

  release(): void {
    if (--this.inFlight === 0 && this.onIdle !== undefined) this.onIdle();
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
  private readonly routes = new Map<string, RouteEntry>();
  /** Last use of jobs whose route is gone (a route itself keeps it while it exists). */
  private readonly lastUsedOfWithdrawn = new Map<string, number>();

  get(jobId: string): RouteEntry | undefined {
    return this.routes.get(jobId);
  }

  /** The route a request may take now (counted), or undefined when the job has none. */
  acquire(jobId: string): RouteEntry | undefined {
    return this.routes.get(jobId)?.acquire();
  }

  set(entry: RouteEntry): RouteEntry {
    const previous = this.routes.get(entry.jobId);
    if (previous && previous !== entry) previous.withdrawn = true;
    this.routes.set(entry.jobId, entry);
    return entry;
  }

  /** Take the job's route away from new requests; returns it (for a drain) if there was one. */
  withdraw(jobId: string): RouteEntry | undefined {
    const entry = this.routes.get(jobId);
    if (!entry) return undefined;
    this.routes.delete(jobId);
    entry.withdrawn = true;
    this.lastUsedOfWithdrawn.set(jobId, entry.lastUsedMs);
    return entry;
  }

  /** When a request last took the job's route (ms since the epoch), withdrawn or not. */
  lastUsedAt(jobId: string): number | undefined {
    return this.routes.get(jobId)?.lastUsedMs ?? this.lastUsedOfWithdrawn.get(jobId);
  }
}
