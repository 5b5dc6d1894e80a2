/**
 * What each shared worker holds, as its own measurements say (docs/operations.md#memory-on-shared-workers):
 * its memory limit, its measured use, and each hosted model's measured size. Kept from
 * the answers of the loads and unloads the router sends (each carries the worker's
 * figure after it, src/worker/app.ts), and from the worker's stats for a worker not yet
 * heard from (just opened, or adopted by a restarted router). Turns that, with the
 * servers the store says each worker hosts, into the views eviction.ts decides on.
 */
import type { LoadResult, WorkerStats } from '../runtime/worker-client.js';
import type { ServerRecord } from '../store/records.js';
import {
  MIN_MODEL_BYTES,
  ModelSizes,
  type DrainDecision,
  type EvictionSettings,
  type FleetVictim,
  type PlacementDecision,
  type ResidentModel,
  type SharedWorkerView,
  decideDrain,
  decidePlacement,
  fleetVictims,
  headroomVictims,
} from './eviction.js';

/**
 * A load's peak over what the model then holds: ONNX Runtime parses the model file into
 * memory, then builds the weights from it, then frees the parsed copy. Room is made for
 * the peak (a worker at its limit mid-load is killed by the kernel, with every model on
 * it); the model then counts what its load measured.
 */
export const LOAD_PEAK_FACTOR = 2;

/** What an idle worker is guessed to take before one was measured. */
export const IDLE_WORKER_GUESS_BYTES = 100 * 1024 ** 2;

interface WorkerFigures {
  /** The worker's limit as it measured it (its cgroup's); null: none known. */
  limitBytes: number | null;
  usedBytes: number;
  /** The least it measured beside its models: its runtime's own memory, as the budget charges it. */
  idleBytes?: number;
  /** What it measured beside its models last: its runtime now (what a new worker is costed at: newWorkerBytes). */
  runtimeBytes?: number;
  /** Measured size of each hosted model, by the name it is served under. */
  models: Map<string, number>;
}

/** A server hosted on a shared worker, with the name its model is served under there. */
export interface HostedServer {
  served: string;
  server: ServerRecord;
}

/** How busy and how recent each job is: the route table's and the job locks' view. */
export interface Activity {
  /** Requests in flight on a server, plus one when its job has an operation under way. */
  inFlight(server: ServerRecord): number;
  lastUsedAt(server: ServerRecord): number;
}

export interface SharedMemoryOptions extends EvictionSettings {
  /** MODELDOCK_WORKER_MEMORY: the limit a shared worker is given (used when it reports none). */
  workerLimitBytes: number;
  /**
   * What is kept free of the budget ahead of need (MODELDOCK_EVICTION_HEADROOM_PERCENT of
   * MODELDOCK_MEMORY_BUDGET): the low watermark is the budget less this, the high one the
   * budget less half of it (eviction.ts's headroomVictims). 0: evict only when a load needs room.
   */
  headroomBytes?: number;
}

/** A hosted model chosen to go, with its worker and server. */
export interface Victim {
  worker: string;
  served: string;
  server: ServerRecord;
  bytes: number;
}

/**
 * What a loaded model counts: what its load measured, but at least MIN_MODEL_BYTES. An
 * allocator reuses memory freed by earlier unloads, so a small model's load often measures
 * nothing; counted as nothing it would free nothing when evicted, and making room for one
 * load would take every such model before one that counts — more than half a worker's.
 */
function atLeastMin(bytes: number): number {
  return Math.max(MIN_MODEL_BYTES, bytes);
}

export class SharedMemory {
  readonly sizes = new ModelSizes();
  private readonly figures = new Map<string, WorkerFigures>();
  /** The least an idle worker measured (its use less its models'), for opening another. */
  private idleBytes: number | undefined;
  /** Per worker, the models being evicted from it: counted as given back until their unload says what it gave. */
  private readonly leaving = new Map<string, Set<string>>();

  constructor(readonly options: SharedMemoryOptions) {}

  /** Whether the worker's figures are known (else ask its stats first). */
  knows(worker: string): boolean {
    return this.figures.has(worker);
  }

  /** A worker's stats: its whole picture (opened, adopted, or after a fault). */
  observeStats(worker: string, stats: WorkerStats): void {
    const models = new Map(
      Object.entries(stats.model_memory_bytes ?? {}).map(([served, bytes]) => [served, atLeastMin(bytes)]),
    );
    this.figures.set(worker, {
      limitBytes: stats.memory_limit_bytes ?? null,
      usedBytes: stats.memory_bytes ?? stats.rss_bytes,
      models,
    });
    this.noteIdle(worker);
  }

  /**
   * A fresh measure of the whole worker (the fleet's idle pass re-measures every worker):
   * held against its limit from then on. The budget keeps charging its runtime at its
   * least measure (accounted()): what a runtime grows by, no eviction gives back.
   */
  observeUsage(worker: string, stats: WorkerStats): void {
    const figures = this.figures.get(worker);
    if (!figures) return this.observeStats(worker, stats);
    figures.usedBytes = stats.memory_bytes ?? stats.rss_bytes;
    if (stats.memory_limit_bytes != null) figures.limitBytes = stats.memory_limit_bytes;
    this.noteIdle(worker);
  }

  /**
   * A load's answer: the model's measured size (for the next estimate too) and the
   * worker's use after it. The model is charged the largest its loads measured
   * (ModelSizes): a load that reused memory freed inside the worker measures next to
   * nothing while the model holds as much as ever, and charged that little the fleet
   * believed it had room it had not (docs/operations.md#memory-on-shared-workers).
   */
  observeLoad(worker: string, served: string, model: string, result: LoadResult): void {
    if (result.memoryBytes !== null) this.sizes.observe(model, result.memoryBytes);
    let figures = this.figures.get(worker);
    if (!figures) {
      // A worker first heard from through a load (one just opened): its answer is its picture.
      if (result.workerMemoryBytes === null) return;
      figures = { limitBytes: null, usedBytes: result.workerMemoryBytes, models: new Map() };
      this.figures.set(worker, figures);
    }
    figures.models.set(served, this.sizes.estimate(model));
    if (result.workerMemoryBytes !== null) figures.usedBytes = result.workerMemoryBytes;
    if (result.workerMemoryLimitBytes !== null) figures.limitBytes = result.workerMemoryLimitBytes;
    this.noteIdle(worker);
  }

  /**
   * Models an eviction is taking off a worker: what they hold counts as given back from
   * now on, and they no longer count among its models. Until their unload answers (which
   * replaces the guess by the worker's measurement), or the returned function is called
   * (the eviction ended, or failed and they stay).
   */
  markLeaving(worker: string, served: readonly string[]): () => void {
    const set = this.leaving.get(worker) ?? new Set<string>();
    for (const name of served) set.add(name);
    this.leaving.set(worker, set);
    return () => {
      for (const name of served) set.delete(name);
      if (set.size === 0 && this.leaving.get(worker) === set) this.leaving.delete(worker);
    };
  }

  /** An unload's answer: the worker's use after it (else its use less the model's size). */
  observeUnload(worker: string, served: string, workerMemoryBytes: number | null): void {
    this.leaving.get(worker)?.delete(served);
    const figures = this.figures.get(worker);
    if (!figures) return;
    const bytes = figures.models.get(served) ?? 0;
    figures.models.delete(served);
    figures.usedBytes = workerMemoryBytes ?? Math.max(0, figures.usedBytes - bytes);
  }

  /** The worker is gone (closed, or died): its figures with it. */
  forget(worker: string): void {
    this.figures.delete(worker);
    this.leaving.delete(worker);
  }

  /** What every shared worker known measured last, together (against the budget: drainDecision). */
  measuredBytes(): number {
    return [...this.figures.values()].reduce((sum, f) => sum + f.usedBytes, 0);
  }

  /** What the budget charges every shared worker known, together. */
  totalBytes(): number {
    return [...this.figures.values()].reduce((sum, f) => sum + accounted(f), 0);
  }

  /**
   * Where the model of `ask` goes among `workers` (each with the servers it hosts), or
   * what must be evicted first, or why it cannot: eviction.ts on measured figures.
   */
  decide(
    workers: { name: string; hosted: HostedServer[]; maxModels?: number; placeable?: boolean }[],
    ask: {
      served: string;
      model: string;
      fileBytes?: number;
      now: number;
      mayOpen: boolean;
      /** What the budget charges outside the shared fleet (dedicated servers, idle pool workers). */
      outsideBytes?: number;
    },
    activity: Activity,
  ): { decision: PlacementDecision; bytes: number } {
    const bytes = this.sizes.estimate(ask.model, ask.fileBytes) * LOAD_PEAK_FACTOR;
    const views = workers.map((w) => {
      // Not spread: that would list the view's models (a getter).
      const view = this.view(w.name, w.hosted, activity);
      if (w.maxModels !== undefined) view.maxModels = w.maxModels;
      if (w.placeable === false) view.placeable = false;
      return view;
    });
    const decision = decidePlacement(
      views,
      {
        jobId: ask.served,
        bytes,
        now: ask.now,
        ...(ask.outsideBytes ? { outsideBytes: ask.outsideBytes } : {}),
        ...(ask.mayOpen
          ? {
              newWorker: {
                limitBytes: this.options.workerLimitBytes,
                idleBytes: this.newWorkerBytes(),
              },
            }
          : {}),
      },
      this.options,
    );
    return { decision, bytes };
  }

  /**
   * Which hosted models to evict so that `need` bytes come back to the budget (for a
   * dedicated server's load): eviction.ts's fleetVictims on measured figures.
   */
  victimsFor(
    workers: { name: string; hosted: HostedServer[] }[],
    need: number,
    now: number,
    activity: Activity,
  ): Victim[] | undefined {
    const views = workers.map((w) => this.view(w.name, w.hosted, activity));
    const chosen = fleetVictims(views, need, now, this.options);
    return chosen && victimsOf(workers, chosen);
  }

  /**
   * The fleet's next step in shrinking while it measures over the budget (eviction.ts's
   * decideDrain on measured figures), with the hosted servers to evict when it drains.
   */
  drainDecision(
    workers: { name: string; hosted: HostedServer[] }[],
    now: number,
    activity: Activity,
    outsideBytes: number,
    draining: string | undefined,
  ): { decision: DrainDecision; victims: Victim[] } {
    const views = workers.map((w) => this.view(w.name, w.hosted, activity));
    const decision = decideDrain(views, this.options, now, outsideBytes, draining);
    const chosen =
      decision.kind === 'drain'
        ? decision.evict.map((model) => ({ workerId: decision.workerId, model }))
        : [];
    return { decision, victims: victimsOf(workers, chosen) };
  }

  /**
   * Whether the fleet may have passed its high watermark (a cheap look before asking
   * headroomVictims, which counts the loads under way too): what its workers are charged
   * and `outsideBytes` against the budget less half the headroom.
   */
  maybeOverHighWatermark(outsideBytes: number): boolean {
    const { budgetBytes, headroomBytes = 0 } = this.options;
    if (budgetBytes <= 0 || headroomBytes <= 0) return false;
    let charged = outsideBytes;
    for (const [worker, figures] of this.figures) {
      charged += accounted(figures);
      // Models on their way out count as given back, as the placement counts them.
      for (const served of this.leaving.get(worker) ?? []) charged -= figures.models.get(served) ?? 0;
    }
    return charged > budgetBytes - headroomBytes / 2;
  }

  /**
   * Which hosted models to evict ahead of need, once the fleet passed its high watermark:
   * eviction.ts's headroomVictims on measured figures; none below it.
   */
  headroomVictims(
    workers: { name: string; hosted: HostedServer[] }[],
    now: number,
    activity: Activity,
    outsideBytes: number,
  ): Victim[] {
    const views = workers.map((w) => this.view(w.name, w.hosted, activity));
    const chosen = headroomVictims(
      views,
      { ...this.options, headroomBytes: this.options.headroomBytes ?? 0 },
      now,
      outsideBytes,
    );
    return victimsOf(workers, chosen);
  }

  /**
   * Whether `bytes` fit on the worker beside everything it holds now — the models on
   * their way out still counted, as the kernel counts them until their unloads answer.
   * A load that fits so need not wait for the evictions that made room for it elsewhere
   * in the accounting (the budget, the models-per-worker bound).
   */
  fitsBeside(worker: string, hosted: HostedServer[], bytes: number, activity: Activity): boolean {
    const view = this.view(worker, hosted, activity);
    const measured = this.figures.get(worker)?.usedBytes ?? view.usedBytes;
    return view.limitBytes - measured - (view.reservedBytes ?? 0) >= bytes;
  }

  /**
   * A worker as eviction.ts sees it. Its figures are summed here; its models, each with
   * its requests in flight and last use, are listed only when a decision looks at them
   * (an eviction, a tie): a placement that finds room reads the sums alone, and listing
   * every hosted model of every worker for each placement was most of its cost at 10,000
   * jobs (density bench, CPU profile). Listed in the tick the decision is made.
   */
  private view(name: string, hosted: HostedServer[], activity: Activity): SharedWorkerView {
    const figures = this.figures.get(name);
    const leaving = this.leaving.get(name);
    let reserved = 0;
    let unmeasured = 0;
    let leavingBytes = 0;
    let count = 0;
    let loadedBytes = 0;
    for (const { served, server } of hosted) {
      const measured = figures?.models.get(served);
      if (leaving?.has(served)) {
        leavingBytes += measured ?? 0;
        continue;
      }
      count++;
      const bytes = measured ?? this.sizes.estimate(server.model);
      // A model on its way in is reserved at its estimate until its load says what it took.
      if (server.state !== 'ready') reserved += bytes * LOAD_PEAK_FACTOR;
      else {
        loadedBytes += bytes;
        if (measured === undefined) unmeasured += bytes;
      }
    }
    let models: ResidentModel[] | undefined;
    const listModels = (): ResidentModel[] => {
      const listed: ResidentModel[] = [];
      for (const { served, server } of hosted) {
        if (leaving?.has(served)) continue;
        const model: ResidentModel = {
          jobId: served,
          bytes: figures?.models.get(served) ?? this.sizes.estimate(server.model),
          inFlight: activity.inFlight(server),
          lastUsedAt: activity.lastUsedAt(server),
          loadedAt: loadedAtOf(server),
        };
        if (server.state !== 'ready') model.loading = true;
        listed.push(model);
      }
      return listed;
    };
    return {
      workerId: name,
      limitBytes: figures?.limitBytes ?? this.options.workerLimitBytes,
      // Unknown figures (not heard from yet): its models at their estimates over an idle worker.
      usedBytes:
        figures === undefined
          ? (this.idleBytes ?? IDLE_WORKER_GUESS_BYTES) + unmeasured
          : Math.max(0, figures.usedBytes - leavingBytes),
      ...(figures?.idleBytes === undefined
        ? {}
        : { accountedBytes: Math.max(0, accounted(figures) - leavingBytes) }),
      // What leaves it stays in its measure for its own next loads (eviction.ts's budgetRoomOn).
      ...(figures === undefined ? {} : { measuredBytes: figures.usedBytes }),
      reservedBytes: reserved,
      modelCount: count,
      loadedModelBytes: loadedBytes,
      get models() {
        return (models ??= listModels());
      },
    };
  }

  /**
   * What a new worker is costed at before its models, against the budget and its limit:
   * what the fleet's workers measure now beside their models, the most of them (at least
   * the least any worker ever measured so). A new worker measures ~46 MiB with 100 m-131
   * models before any request, but grows under the traffic its workers see to what they
   * measure (~60-96 MiB in the density churn); costed at its first measure, the fleet
   * opened one as soon as a drain (shrinkWhileOver) brought its measure a little under the
   * budget, and drained it again seconds later, its 100 models with it. Before any worker
   * was measured, the first opens on trust: no budget could serve anything without one,
   * and its measurement counts from then on.
   */
  private newWorkerBytes(): number {
    if (this.figures.size === 0) return this.idleBytes ?? 0;
    let bytes = this.idleBytes ?? IDLE_WORKER_GUESS_BYTES;
    for (const figures of this.figures.values()) bytes = Math.max(bytes, figures.runtimeBytes ?? 0);
    return bytes;
  }

  private noteIdle(worker: string): void {
    const figures = this.figures.get(worker)!;
    const models = [...figures.models.values()].reduce((sum, b) => sum + b, 0);
    const idle = Math.max(0, figures.usedBytes - models);
    figures.runtimeBytes = idle;
    if (idle <= 0) return;
    if (figures.idleBytes === undefined || idle < figures.idleBytes) figures.idleBytes = idle;
    if (this.idleBytes === undefined || idle < this.idleBytes) this.idleBytes = idle;
  }
}

/**
 * Epoch ms a server's model was loaded, parsed once per record: every placement views
 * every hosted model, and parsing their timestamps anew each time was a noticeable part
 * of the router's time at 10,000 jobs (density bench, CPU profile). Records are replaced,
 * never changed, on every write.
 */
const loadedAtByRecord = new WeakMap<ServerRecord, number>();
export function loadedAtOf(server: ServerRecord): number {
  let at = loadedAtByRecord.get(server);
  if (at === undefined) {
    at = Date.parse(server.loadedAt ?? server.updatedAt);
    loadedAtByRecord.set(server, at);
  }
  return at;
}

/** The hosted servers behind the models eviction.ts chose. */
function victimsOf(workers: { name: string; hosted: HostedServer[] }[], chosen: FleetVictim[]): Victim[] {
  return chosen.map(({ workerId, model }) => ({
    worker: workerId,
    served: model.jobId,
    server: workers.find((w) => w.name === workerId)!.hosted.find((h) => h.served === model.jobId)!.server,
    bytes: model.bytes,
  }));
}

/** What the budget charges a worker: its runtime at its least measure, plus its models' loads. */
function accounted(figures: WorkerFigures): number {
  if (figures.idleBytes === undefined) return figures.usedBytes;
  return figures.idleBytes + [...figures.models.values()].reduce((sum, b) => sum + b, 0);
}
