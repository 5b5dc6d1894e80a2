/**
 * The shared workers: workers that host the models of many jobs (shared placement,
 * docs/operations.md "Shared placement"). The router keeps them as a fleet: it opens one
 * when the placement rule finds no room in the others (a warm-pool worker when there is
 * one), closes one that has hosted nothing for MODELDOCK_SHARED_IDLE_MS, and drains and
 * closes one while the fleet measures over MODELDOCK_MEMORY_BUDGET (shrinkWhileOver).
 *
 * What a shared worker hosts is not stored apart: the server records that name it (their
 * `workerName`) say so, which is also what survives a router restart. A shared worker is
 * recognised by its name, `<instance>-shared-NNNN` (it also carries
 * `modeldock.kind=shared`, but one taken from the warm pool keeps the pool's labels).
 */
import { NotReadyError, QuotaExceededError, WorkerError, errorMessage } from '../errors.js';
import { KeyedMutex } from '../keyed-mutex.js';
import { LABELS, type WorkerInfo } from '../runtime/runtime.js';
import type { ServerRecord } from '../store/records.js';
import type { CreationGate } from './creation-gate.js';
import type { LifecycleDeps, SharedOptions } from './lifecycle-types.js';
import type { LiveServers } from './live-servers.js';
import type { OperationRecorder } from './operation-recorder.js';
import { AsyncResource } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import {
  loadedAtOf,
  type Activity,
  type HostedServer,
  type SharedMemory,
  type Victim,
} from './shared-memory.js';
import type { WarmPools } from './warm-pools.js';
import { workerSpec } from './worker-spec.js';

export const SHARED_KIND = 'shared';

/** Evictions a background pass runs at once (evictAheadOfNeed, shrinkWhileOver). */
const BACKGROUND_EVICTIONS_AT_ONCE = 4;

/** A placement: the server on its worker, and the evictions that make room there (still under way). */
interface Placed {
  server: ServerRecord;
  evicted?: Promise<unknown>;
}

/**
 * Why a hosted model is evicted: to make room for job `forJob` (`young`: loaded less than
 * the minimum residency ago), ahead of need (`headroom`: keepHeadroom), or to empty its
 * worker for closing (`drain`: shrinkWhileOver).
 */
export type EvictionCause = { forJob: string; young: boolean } | 'headroom' | 'drain';

/** Evicts a hosted server (operations/evict.ts). */
export type Evictor = (victim: ServerRecord, cause: EvictionCause) => Promise<unknown>;

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/** What `GET /v1/limits` shows of the shared fleet. */
export interface SharedStatus {
  maxJobs: number;
  /** Models on shared workers now (TEMPs' included). */
  jobs: number;
  /** Shared workers as last listed. */
  workers: number;
}

export const DEFAULT_SHARED_OPTIONS: SharedOptions = {
  placement: 'dedicated',
  jobsPerWorker: 100,
  maxJobs: 10_000,
  idleMs: 60_000,
  minResidencyMs: 30_000,
  headroomPercent: 5,
};

/** The name a server's model is served under on its worker: the job's, or the TEMP server's own on a shared worker. */
export function servedName(server: Pick<ServerRecord, 'jobId' | 'serverId' | 'kind' | 'placement'>): string {
  // A shared worker may host the job itself besides its TEMP: each TEMP gets a name of its own.
  return server.kind === 'temp' && server.placement === 'shared' ? server.serverId : server.jobId;
}

export class SharedFleet {
  /** One placement (or closing) at a time: what a worker hosts is counted and changed together. */
  private readonly placing = new KeyedMutex();
  /** Per shared worker found hosting nothing: since when (ms). */
  private readonly emptySince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  /**
   * The shared workers as last listed, and since opened or closed: what placement picks
   * from without asking the runtime each time (a list inspects every worker). Listed
   * again by every idle pass (closeIdle) and after a worker ended (workerEnded).
   */
  private view: Map<string, WorkerInfo> | undefined;

  private evictor: Evictor = () => Promise.reject(new WorkerError('no evictor set'));
  /** The background pass evicting ahead of need (keepHeadroom), while one runs. */
  private headroomPass: Promise<void> | undefined;
  /** A load ended during that pass: look again after it. */
  private headroomAgain = false;
  /** The router is stopping: no more background passes. */
  private stopped = false;
  /** The router's own context (no operation's, no caller's), captured at construction: where background passes run. */
  private readonly detached = new AsyncResource('modeldock.shared-fleet');
  /** Each worker's hosted servers with their served names, per list the live view keeps (hostedByWorker). */
  private readonly hostedLists = new WeakMap<readonly ServerRecord[], HostedServer[]>();
  /** What the memory budget charges outside the fleet (memory-policy.ts): dedicated servers, idle pool workers. */
  private outsideBytes: () => Promise<number> = () => Promise.resolve(0);
  /**
   * The worker being drained to be closed while the fleet measures over the budget
   * (shrinkWhileOver): placement skips it. One at a time.
   */
  private draining: string | undefined;
  /** A periodic pass (remeasure, shrink, close idle) is under way: a tick meanwhile skips. */
  private passing = false;

  constructor(
    private readonly deps: LifecycleDeps,
    /** The live server records (live-servers.ts): what each shared worker hosts. */
    private readonly live: LiveServers,
    private readonly pool: WarmPools,
    private readonly creations: CreationGate,
    /** What each shared worker measures, and the decisions on it. */
    readonly memory: SharedMemory,
    /** How busy and how recent each hosted server is (the route table's view). */
    private readonly activity: Activity,
    readonly options: SharedOptions,
  ) {}

  get prefix(): string {
    return `${this.deps.options.instance}-shared-`;
  }

  /** Whether a worker is one of this router's shared workers. */
  owns(worker: Pick<WorkerInfo, 'name'>): boolean {
    return worker.name.startsWith(this.prefix);
  }

  /** Look for shared workers to close every so often (a quarter of the idle time, 1-10 s). */
  start(): void {
    // Counted before the first creation asks (MODELDOCK_MAX_SERVERS counts shared workers).
    void this.workers().catch(() => undefined);
    const every = Math.min(10_000, Math.max(1_000, Math.floor(this.options.idleMs / 4)));
    this.timer = setInterval(() => {
      // A pass that outlasts the interval (a drain waiting on its evictions) is not run twice.
      if (this.passing) return;
      this.passing = true;
      void this.detached
        .runInAsyncScope(() => this.pass())
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: errorMessage(error) }, "the shared fleet's periodic pass failed"),
        )
        .finally(() => (this.passing = false));
    }, every);
    this.timer.unref();
  }

  /** The periodic pass: measure every worker, shrink the fleet while over its budget, close idle workers. */
  private async pass(): Promise<void> {
    await this.remeasure();
    await this.shrinkWhileOver();
    await this.closeIdle();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** The shared workers (running or not), as the runtime lists them now. */
  async workers(): Promise<WorkerInfo[]> {
    const workers = (await this.deps.runtime.list()).filter((w) => this.owns(w));
    this.view = new Map(workers.map((w) => [w.name, w]));
    return workers;
  }

  /** The shared workers as last listed (listed now if they never were). */
  private async knownWorkers(): Promise<WorkerInfo[]> {
    return this.view ? [...this.view.values()] : this.workers();
  }

  /** A shared worker ended (the runtime said so): the next placement lists the workers again. */
  workerEnded(name: string): void {
    if (this.view?.has(name)) this.view = undefined;
  }

  /** How many shared workers there were when last listed. */
  get workerCount(): number {
    return this.view?.size ?? 0;
  }

  /** Models hosted on shared workers now (a TEMP's included), against MODELDOCK_MAX_SHARED_JOBS. */
  async hostedCount(): Promise<number> {
    return this.live.hostedCount();
  }

  async status(): Promise<SharedStatus> {
    return { maxJobs: this.options.maxJobs, jobs: await this.hostedCount(), workers: this.workerCount };
  }

  /** 429 when `count` more models would pass MODELDOCK_MAX_SHARED_JOBS. */
  async assertRoom(count = 1): Promise<void> {
    const hosted = await this.hostedCount();
    if (hosted + count > this.options.maxJobs) {
      throw new QuotaExceededError(
        `${hosted} models are loaded on shared workers: MODELDOCK_MAX_SHARED_JOBS=${this.options.maxJobs} ` +
          (count > 1 ? `would be passed by ${count} more` : 'is reached') +
          '; terminate or unload a shared job (or raise the limit) to place another',
        { details: { limit: 'max_shared_jobs', max_shared_jobs: this.options.maxJobs } },
      );
    }
  }

  /** Who evicts a model (operations/evict.ts), set by the lifecycle that owns the job locks. */
  useEvictor(evictor: Evictor): void {
    this.evictor = evictor;
  }

  /** What the one memory budget charges beside the fleet, set by the lifecycle (memory-policy.ts). */
  useOutsideCharge(outsideBytes: () => Promise<number>): void {
    this.outsideBytes = outsideBytes;
  }

  /** What the budget charges the fleet: each worker's runtime at its least measure plus its models' loads. */
  chargedBytes(): number {
    return this.memory.totalBytes();
  }

  /**
   * Re-measure every running shared worker (its stats: cgroup or rss), so that its limit
   * is checked against what it holds now, its runtime's growth beside its models
   * (allocator fragmentation, caches, after thousands of loads and unloads) included; the
   * budget charges the runtime at its least measure (shared-memory.ts). Cheap: one small request per worker, every idle pass; a worker that does not answer
   * keeps its last figures.
   */
  async remeasure(): Promise<void> {
    const running = (await this.knownWorkers()).filter((w) => w.running && w.endpoint);
    await Promise.all(
      running.map(async (w) => {
        const stats = await this.deps.workers.stats(w.endpoint!).catch(() => undefined);
        if (stats) this.memory.observeUsage(w.name, stats);
      }),
    );
  }

  /**
   * Give `need` bytes back to the memory budget for a dedicated server's load, by evicting
   * the least recently used idle shared models (the placement's rules: nothing in flight
   * or loading, the minimum residency, at most half of one worker's models). Evicts
   * nothing when those rules cannot cover `need`. Resolves once the evictions ended, with
   * the jobs evicted and the bytes they held.
   */
  async evictForOutside(need: number, forJob: string): Promise<{ evicted: string[]; freedBytes: number }> {
    const chosen = await this.placing.run('fleet', async () => {
      const running = await this.runningHosts();
      const victims = this.memory.victimsFor(running, need, Date.now(), this.activity);
      return this.evictAll(victims ?? [], forJob);
    });
    const settled = await Promise.allSettled(chosen.map((c) => c.done));
    const evicted = chosen.filter((_, i) => settled[i]!.status === 'fulfilled').map((c) => c.victim);
    return {
      evicted: evicted.map((v) => v.server.jobId),
      freedBytes: evicted.reduce((sum, v) => sum + v.bytes, 0),
    };
  }

  /**
   * After a load on a shared worker: when the fleet has passed its high watermark under
   * MODELDOCK_MEMORY_BUDGET, evict ahead of need in the background down to the low one
   * (eviction.ts's headroomVictims), so the next loads find room at once instead of each
   * waiting on an eviction of its own (the density bench's churn). One pass at a time; a
   * load during one asks for another after it. Placement still evicts for itself when
   * there is no room (a burst faster than the passes, or a budget without headroom).
   */
  keepHeadroom(): void {
    if (this.stopped) return;
    if (this.headroomPass) {
      this.headroomAgain = true;
      return;
    }
    this.headroomAgain = false;
    // Outside the calling operation's context: its pending writes are not this pass's to
    // flush, and the evictions are the router's own (caller `system`).
    this.headroomPass = this.detached
      .runInAsyncScope(() => this.evictAheadOfNeed())
      .catch((error: unknown) =>
        this.deps.logger.warn({ err: errorMessage(error) }, 'evicting ahead of need failed'),
      )
      .finally(() => {
        this.headroomPass = undefined;
        if (this.headroomAgain) this.keepHeadroom();
      });
  }

  /**
   * The background pass of keepHeadroom; resolves once its evictions ended. Its victims
   * are chosen together and count as given back from then on (as a placement's do), but
   * go a few at a time: all at once (about 26 at 10,000 jobs under the density bench's
   * budget) queued their unloads on the workers in front of the loads placed there, and
   * an eviction took 330 ms instead of 30. A victim that became busy meanwhile (a request
   * came for it) stays.
   */
  private async evictAheadOfNeed(): Promise<void> {
    if (!this.memory.maybeOverHighWatermark(await this.outsideBytes())) return;
    const chosen = await this.placing.run('fleet', async () => {
      const [running, outside] = await Promise.all([this.runningHosts(), this.outsideBytes()]);
      return this.memory
        .headroomVictims(running, Date.now(), this.activity, outside)
        .map((victim) => ({ victim, stay: this.memory.markLeaving(victim.worker, [victim.served]) }));
    });
    if (chosen.length === 0) return;
    this.deps.logger.debug(
      { evicting: chosen.map((c) => c.victim.server.jobId) },
      'evicting least recently used models ahead of need (the fleet passed its high watermark)',
    );
    await this.evictInRounds(chosen, 'headroom');
  }

  /**
   * A background pass's evictions, BACKGROUND_EVICTIONS_AT_ONCE at a time (each marked
   * leaving when chosen; `stay` ends that). A victim that became busy meanwhile (a request
   * came for it) stays.
   */
  private async evictInRounds(
    chosen: { victim: Victim; stay: () => void }[],
    cause: 'headroom' | 'drain',
  ): Promise<void> {
    for (let i = 0; i < chosen.length; i += BACKGROUND_EVICTIONS_AT_ONCE) {
      const round = chosen.slice(i, i + BACKGROUND_EVICTIONS_AT_ONCE).map(({ victim, stay }) => {
        // Checked in the tick its eviction takes the job's lock (evict.ts), as a placement's are.
        if (this.stopped || this.activity.inFlight(victim.server) > 0) {
          stay();
          return Promise.resolve();
        }
        return this.evictor(victim.server, cause).finally(stay);
      });
      await Promise.allSettled(round);
    }
  }

  /**
   * Shrink the fleet while it measures over MODELDOCK_MEMORY_BUDGET (eviction.ts's
   * decideDrain; docs/operations.md#a-fleet-measuring-past-its-budget). Evictions give the
   * kernel almost nothing back, so only closing a worker brings the measure down: one
   * worker at a time is drained (placement skips it), its idle models evicted a few at a
   * time with reason `drain` (a busy, loading or young one stays until a later pass), and
   * it is closed as soon as it hosts nothing, not after the idle time. The measure is
   * looked at again at the next pass, after the close; a fleet measuring within the budget
   * again stops draining (the worker takes loads again). Never below one worker. The
   * evicted jobs' next requests load them again elsewhere and wait for it.
   */
  async shrinkWhileOver(): Promise<void> {
    if (this.memory.options.budgetBytes <= 0 || this.stopped) return;
    const step = await this.placing.run('fleet', async () => {
      const [running, outside] = await Promise.all([this.runningHosts(), this.outsideBytes()]);
      const { decision, victims } = this.memory.drainDecision(
        running,
        Date.now(),
        this.activity,
        outside,
        this.draining,
      );
      const figures = {
        measured: mib(this.memory.measuredBytes() + outside),
        budget: mib(this.memory.options.budgetBytes),
      };
      if (decision.kind === 'none') {
        this.draining = undefined;
        return undefined;
      }
      if (decision.kind === 'stop') {
        this.draining = undefined;
        this.deps.logger.info(
          { worker: decision.workerId, ...figures },
          'stopped draining a shared worker: the shared workers measure within MODELDOCK_MEMORY_BUDGET again',
        );
        return undefined;
      }
      if (this.draining !== decision.workerId) {
        this.draining = decision.workerId;
        this.deps.logger.info(
          {
            worker: decision.workerId,
            models: running.find((w) => w.name === decision.workerId)?.hosted.length,
            ...figures,
          },
          'draining a shared worker to close it: the shared workers measure over MODELDOCK_MEMORY_BUDGET',
        );
      }
      return {
        worker: decision.workerId,
        chosen: victims.map((victim) => ({
          victim,
          stay: this.memory.markLeaving(victim.worker, [victim.served]),
        })),
      };
    });
    if (!step) return;
    await this.evictInRounds(step.chosen, 'drain');
    await this.closeDrained(step.worker);
  }

  /**
   * Close the drained worker if it hosts nothing now (looked at in the fleet's turn;
   * placement skips it meanwhile, so nothing arrives while it is removed). Read from the
   * live records, not the memory figures: a model on its way out (its EVICT under way, a
   * placement's or ahead of need) counts as gone there, but its record names the worker
   * until its unload ended.
   */
  private async closeDrained(name: string): Promise<void> {
    const worker = await this.placing.run('fleet', async () => {
      if (this.draining !== name || (await this.hostedByWorker()).has(name)) return undefined;
      return (await this.knownWorkers()).find((w) => w.name === name);
    });
    if (!worker) return;
    try {
      await this.close(worker);
    } finally {
      if (this.draining === name) this.draining = undefined;
    }
    this.deps.metrics.drainedWorkers.inc();
    this.deps.logger.info(
      {
        worker: name,
        measured: mib(this.memory.measuredBytes()),
        budget: mib(this.memory.options.budgetBytes),
      },
      'closed a drained shared worker: the shared workers measured over MODELDOCK_MEMORY_BUDGET',
    );
  }

  /** Remove a shared worker and forget it (its figures, its client, its place in the view). */
  private async close(worker: WorkerInfo): Promise<void> {
    await this.deps.runtime.remove(worker.name);
    await this.deps.workers.forget(worker.endpoint);
    this.memory.forget(worker.name);
    this.emptySince.delete(worker.name);
    this.view?.delete(worker.name);
  }

  /** The running shared workers, each with what it hosts and figures known (in the fleet's turn). */
  private async runningHosts(): Promise<{ name: string; hosted: HostedServer[] }[]> {
    const [workers, hosted] = await Promise.all([this.knownWorkers(), this.hostedByWorker()]);
    const running = workers.filter((w) => w.running && w.endpoint);
    await this.learn(running);
    return running.map((w) => ({ name: w.name, hosted: hosted.get(w.name) ?? [] }));
  }

  /**
   * Start evicting each victim for `forJob`, in this tick: each one's lock is taken at once
   * (evict.ts), as a placement's are, and what it holds counts as given back until its
   * eviction ends.
   */
  private evictAll(victims: Victim[], forJob: string): { victim: Victim; done: Promise<unknown> }[] {
    const minResidencyMs = this.memory.options.minResidencyMs;
    return victims.map((v) => {
      const young = Date.now() - loadedAtOf(v.server) < minResidencyMs;
      const done = this.evictor(v.server, { forJob, young });
      const leaving = this.memory.markLeaving(v.worker, [v.served]);
      return { victim: v, done: done.finally(leaving) };
    });
  }

  /**
   * Choose the worker for `server` by measured memory (shared-memory.ts, eviction.ts):
   * one with room, a new one, or one where the least recently used idle models are
   * evicted first; then run `assign` with it, the running worker, before the next
   * placement counts what each worker hosts. When only busy models could make room, the
   * placement waits for them (bounded by MODELDOCK_LOAD_WAIT_MS, then 503); a model
   * that cannot fit is refused (429) with the reason.
   */
  async place(
    rec: OperationRecorder,
    server: ServerRecord,
    assign: (worker: WorkerInfo) => Promise<ServerRecord>,
  ): Promise<ServerRecord> {
    // A model measured before is estimated by that; its file's size is only a first guess,
    // read before the fleet's turn (a file-system round trip there would hold up every placement).
    const fileBytes = this.memory.sizes.isMeasured(server.model)
      ? undefined
      : await this.deps.catalog.modelBytes(server.model);
    const placed = await this.placing.run('fleet', async (): Promise<Placed> => {
      const served = servedName(server);
      const deadline = Date.now() + (this.deps.options.loadWaitMs ?? 30_000);
      for (let attempt = 0; ; attempt++) {
        const [workers, hosted] = await Promise.all([
          this.knownWorkers(),
          this.hostedByWorker(server.serverId),
        ]);
        const running = workers.filter((w) => w.running && w.endpoint);
        await this.learn(running);
        // One name per worker (a job's replicas apart), and at most jobsPerWorker on each
        // (a worker at it takes another model only in place of one it evicts); nothing on
        // a worker being drained. Those still count against the budget.
        const candidates = running.map((w) => {
          const onIt = hosted.get(w.name) ?? [];
          return {
            name: w.name,
            hosted: onIt,
            maxModels: this.options.jobsPerWorker,
            placeable: w.name !== this.draining && !onIt.some((h) => h.served === served),
          };
        });
        const { decision, bytes } = this.memory.decide(
          candidates,
          {
            served,
            model: server.model,
            ...(fileBytes === undefined ? {} : { fileBytes }),
            now: Date.now(),
            mayOpen: await this.mayOpen(),
            outsideBytes: await this.outsideBytes(),
          },
          this.activity,
        );
        if (decision.kind === 'open') return { server: await this.assignTo(await this.open(rec), assign) };
        if (decision.kind === 'place') {
          const worker = running.find((w) => w.name === decision.workerId)!;
          if (decision.evict.length === 0) return { server: await this.assignTo(worker, assign) };
          const victims = (hosted.get(worker.name) ?? []).filter((h) =>
            decision.evict.some((v) => v.jobId === h.served),
          );
          // The load waits for its victims only when the worker itself could not hold it
          // beside them (the kernel would kill it, and every model on it, at its limit);
          // room made for the budget or the models-per-worker bound alone is made while
          // it loads: for those moments the fleet holds the victims' bytes beyond them.
          const waits = !this.memory.fitsBeside(
            worker.name,
            hosted.get(worker.name) ?? [],
            bytes,
            this.activity,
          );
          // Every victim's lock is taken in this tick (evict.ts), before anything else can
          // start on it: from here on each counts as busy, never chosen again. What they
          // hold counts as given back (a load that must waits for it below), so the next
          // placement, which need not wait for these evictions, does not evict for it twice.
          const evictions = victims.map((v) =>
            this.evictor(v.server, { forJob: server.jobId, young: decision.youngEvicted }),
          );
          const leaving = this.memory.markLeaving(
            worker.name,
            victims.map((v) => v.served),
          );
          const evicted = Promise.all(evictions).finally(leaving);
          // Awaited once this placement is recorded; a failure before then is not unhandled.
          evicted.catch(() => undefined);
          rec.warn(
            `evicted ${victims.map((v) => v.served).join(', ')} from ${worker.name} to make room (about ${mib(bytes)} needed)`,
          );
          return { server: await this.assignTo(worker, assign), ...(waits ? { evicted } : {}) };
        }
        if (decision.reason !== 'busy') {
          this.deps.metrics.placementRefusals.inc({ reason: decision.reason });
          throw new QuotaExceededError(decision.message, {
            details: { limit: 'shared_memory', reason: decision.reason },
          });
        }
        if (Date.now() >= deadline) {
          this.deps.metrics.placementRefusals.inc({ reason: decision.reason });
          throw new NotReadyError(decision.message, 1);
        }
        // Busy models finish their requests within moments; look again shortly.
        await delay(Math.min(200, 10 * 2 ** attempt));
      }
    });
    // The model loads once its victims have gone, but the next placement need not wait:
    // this one is counted (its server names the worker, its load reserved).
    const { evicted } = placed;
    if (evicted) await rec.step('evict', () => evicted);
    return placed.server;
  }

  private assignTo(worker: WorkerInfo, assign: (worker: WorkerInfo) => Promise<ServerRecord>) {
    this.emptySince.delete(worker.name);
    return assign(worker);
  }

  /** Ask the workers not heard from yet (opened, adopted) what they measure. */
  private async learn(running: WorkerInfo[]): Promise<void> {
    await Promise.all(
      running
        .filter((w) => !this.memory.knows(w.name))
        .map(async (w) => {
          try {
            this.memory.observeStats(w.name, await this.deps.workers.stats(w.endpoint!));
          } catch (error) {
            this.deps.logger.warn(
              { worker: w.name, err: errorMessage(error) },
              'shared worker did not say what it measures; its models count at their estimates',
            );
          }
        }),
    );
  }

  /** Whether another worker may be opened now (MODELDOCK_MAX_SERVERS). */
  private async mayOpen(): Promise<boolean> {
    return this.creations.assertRoom(1).then(
      () => true,
      () => false,
    );
  }

  /**
   * Close the shared workers that have hosted nothing for the idle time, and at once
   * those that died hosting nothing (their jobs were placed elsewhere).
   */
  async closeIdle(now = Date.now()): Promise<string[]> {
    return this.placing.run('fleet', async () => {
      const [workers, hosted] = await Promise.all([this.workers(), this.hostedByWorker()]);
      const closed: string[] = [];
      for (const worker of workers) {
        if ((hosted.get(worker.name)?.length ?? 0) > 0) {
          this.emptySince.delete(worker.name);
          continue;
        }
        const since = this.emptySince.get(worker.name) ?? now;
        this.emptySince.set(worker.name, since);
        if (worker.running && now - since < this.options.idleMs) continue;
        await this.close(worker);
        closed.push(worker.name);
        this.deps.logger.info({ worker: worker.name }, 'closed a shared worker that hosted nothing');
      }
      return closed;
    });
  }

  /** A new shared worker, started and ready; counted against MODELDOCK_MAX_SERVERS like any worker. */
  private async open(rec: OperationRecorder): Promise<WorkerInfo> {
    const { runtime, workers, store, options } = this.deps;
    await this.creations.assertRoom(1);
    const name = `${this.prefix}${String(await store.allocateServerNumber()).padStart(4, '0')}`;
    const spec = workerSpec(name, { [LABELS.kind]: SHARED_KIND }, options.workerLimits);
    let info = await rec.step('create', async () => (await this.pool.take(name)) || runtime.create(spec));
    if (!info.running) info = await rec.step('start', () => runtime.start(name));
    const endpoint = info.endpoint;
    if (!endpoint) throw new WorkerError(`shared worker ${name} is running but has no reachable endpoint`);
    await rec.step('wait_ready', () =>
      workers.waitUntilReady(endpoint, {
        timeoutMs: options.readyTimeoutMs,
        isAlive: async () => (await runtime.inspect(name))?.running === true,
      }),
    );
    this.view?.set(name, info);
    this.deps.logger.info({ worker: name }, 'opened a shared worker');
    return info;
  }

  /**
   * Per shared worker, the servers it hosts (but `except`: it is being placed anew), in
   * number order as the store lists them (ties in the decisions fall the same way). From
   * the live view's index of hosted models: only those, not every live record; a worker's
   * list is built again only after what it hosts changed.
   */
  private async hostedByWorker(except?: string): Promise<Map<string, HostedServer[]>> {
    const byWorker = new Map<string, HostedServer[]>();
    for (const [worker, servers] of await this.live.hostedByWorker()) {
      let list = this.hostedLists.get(servers);
      if (!list) {
        list = servers.map((server) => ({ served: servedName(server), server }));
        this.hostedLists.set(servers, list);
      }
      if (except !== undefined && servers.some((server) => server.serverId === except))
        list = list.filter((h) => h.server.serverId !== except);
      if (list.length > 0) byWorker.set(worker, list);
    }
    return byWorker;
  }
}
