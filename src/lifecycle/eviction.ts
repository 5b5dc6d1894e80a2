/**
 * Where a model goes among the shared workers, and what must make room for it: pure
 * decisions on measured memory (docs/operations.md#memory-on-shared-workers), no I/O.
 *
 * Capacity is each worker's memory limit; use is what the worker measures (its cgroup's
 * working set or its rss, src/worker/memory-meter.ts), and each loaded model counts what
 * its own load measured. MODELDOCK_MEMORY_BUDGET, when set, bounds every managed worker
 * together: the shared workers at what they are charged (a runtime at its least measure
 * beside its models, each model at the largest its loads measured), beside what the
 * budget charges outside the fleet (dedicated servers, the warm pool); and no decision
 * grows what the workers measure past the budget (budgetRoomForNew, budgetRoomOn). A model about to load is
 * estimated by its last measured load, else by a first guess (`ModelSizes`), and reserved at that estimate until its load says what it took.
 *
 * The choice, in order:
 * 1. A worker with room for the estimate (under its limit and under the budget): the one
 *    with the most room left, then the fewest requests in flight — spreading the load.
 * 2. A new worker, when the caller may open one and the budget holds it.
 * 3. Eviction on one worker: the least recently used models first, the fewest that make
 *    room. Never a model with requests in flight or still loading; never one loaded less
 *    than the minimum residency ago unless nothing else can go (and then still the least
 *    recently used of them). The worker whose victims were used least recently wins.
 * 4. Otherwise a refusal that says why.
 *
 * What keeps it from thrashing (what ModelMesh's eviction storms lacked): sizes are
 * measured, not guessed, so a load never evicts for memory it will not use; a load
 * evicts the fewest models that make room, and never more than half of one worker's
 * models — a model that needs more is refused rather than emptying a cache; and a model
 * just loaded is not evicted for the next one while anything older can go, so a working
 * set that fits never churns.
 */

export interface ResidentModel {
  /** The job whose model this is (one server of it). */
  jobId: string;
  /** What its load measured; while `loading`, the estimate it was placed with. */
  bytes: number;
  inFlight: number;
  /** Epoch ms of its last request (its load, before any). */
  lastUsedAt: number;
  /** Epoch ms its load finished. */
  loadedAt: number;
  /** Still loading: reserved, never evicted. */
  loading?: boolean;
}

export interface SharedWorkerView {
  workerId: string;
  /** The worker's memory limit. */
  limitBytes: number;
  /** What the worker measured last, loaded models and runtime together (against its limit). */
  usedBytes: number;
  /**
   * What the budget charges it: its runtime at the least it measured beside its models,
   * plus each model as its load measured (default: usedBytes). What the runtime grows by
   * over thousands of loads and unloads is not charged: evicting models cannot give it
   * back, and charging it starved the cache until loads were refused (the density run,
   * docs/operations.md#a-fleet-over-its-budget).
   */
  accountedBytes?: number;
  /**
   * What the worker measured last, its models on their way out included: memory a model
   * gives back stays with the worker's allocator for its next loads, not with the budget
   * (default: usedBytes). A worker is held against the budget at the larger of this and
   * what it is charged, by every placement but one on the worker itself (budgetRoomOn).
   */
  measuredBytes?: number;
  /** Bytes reserved for loads placed here whose measurement has not come back yet. */
  reservedBytes?: number;
  /** Models it may host at most (MODELDOCK_SHARED_JOBS_PER_WORKER); at it, it has room only by eviction. */
  maxModels?: number;
  /**
   * false: the worker takes no load (it is being drained, or already hosts the model's
   * name) and gives no room by eviction, but still counts against the budget (default true).
   */
  placeable?: boolean;
  models: ResidentModel[];
  /**
   * `models.length`, and what its loaded (not loading) models hold together, when the
   * caller knows them without listing the models: a placement that finds room decides on
   * these alone, and its views need not list every hosted model (shared-memory.ts).
   */
  modelCount?: number;
  loadedModelBytes?: number;
}

export interface EvictionSettings {
  /** MODELDOCK_MEMORY_BUDGET: bytes all managed workers may use together; 0: no budget. */
  budgetBytes: number;
  /** MODELDOCK_MIN_RESIDENCY_MS: a model younger than this goes only when nothing else can. */
  minResidencyMs: number;
}

export interface PlacementAsk {
  jobId: string;
  /** The model's estimated memory (ModelSizes.estimate). */
  bytes: number;
  now: number;
  /**
   * A new worker may be opened (the fleet is under its bound), and what it would cost
   * before any model: its limit and the memory an idle worker measures.
   */
  newWorker?: { limitBytes: number; idleBytes: number };
  /** What the budget charges outside the shared fleet (dedicated servers, idle pool workers). */
  outsideBytes?: number;
}

export type Refusal =
  /** Larger than any worker could hold, or than the whole budget: no waiting helps. */
  | 'too_large'
  /** Room could be made only by evicting models in use or loading: later it may. */
  | 'busy'
  /** Room would take more than half of a worker's models: refused rather than a storm. */
  | 'would_evict_too_many';

export type PlacementDecision =
  | { kind: 'place'; workerId: string; evict: ResidentModel[]; youngEvicted: boolean }
  | { kind: 'open' }
  | { kind: 'refuse'; reason: Refusal; message: string };

/** At most this share of one worker's models may be evicted for one load. */
export const MAX_EVICTED_SHARE = 0.5;

/** Room left on a worker for one more model (negative when it is over). */
export function roomOn(worker: SharedWorkerView): number {
  return worker.limitBytes - worker.usedBytes - (worker.reservedBytes ?? 0);
}

/** What a worker could hold with every model gone: its limit less its runtime's own memory. */
export function capacityOf(worker: SharedWorkerView): number {
  const models =
    worker.loadedModelBytes ?? worker.models.reduce((sum, m) => sum + (m.loading ? 0 : m.bytes), 0);
  return worker.limitBytes - Math.max(0, worker.usedBytes - models);
}

function inFlightOn(worker: SharedWorkerView): number {
  return worker.models.reduce((sum, m) => sum + m.inFlight, 0);
}

/**
 * Room the budget leaves beside all shared workers at what they are charged, the loads
 * under way and what it charges outside them (`outsideBytes`); Infinity without a budget.
 */
export function budgetRoom(
  workers: SharedWorkerView[],
  settings: EvictionSettings,
  outsideBytes = 0,
): number {
  return roomBeside(workers, settings, outsideBytes, chargedOf);
}

/** The budget less `outsideBytes` and each worker at `counted` with the loads under way on it. */
function roomBeside(
  workers: SharedWorkerView[],
  settings: EvictionSettings,
  outsideBytes: number,
  counted: (worker: SharedWorkerView) => number,
): number {
  if (settings.budgetBytes <= 0) return Infinity;
  const used = workers.reduce((sum, w) => sum + counted(w) + (w.reservedBytes ?? 0), 0);
  return settings.budgetBytes - used - outsideBytes;
}

/** What a worker's models are charged beside its runtime's least measure (accountedBytes). */
function chargedOf(worker: SharedWorkerView): number {
  return worker.accountedBytes ?? worker.usedBytes;
}

/**
 * What the budget holds a worker at for anything placed elsewhere: the larger of its
 * charge and its measure. Memory its evicted models freed, and a load that reused such
 * memory and measured next to nothing, are still the kernel's to count; only a load on
 * the worker itself can reuse them.
 */
function heldOf(worker: SharedWorkerView): number {
  return Math.max(chargedOf(worker), worker.measuredBytes ?? worker.usedBytes);
}

/**
 * Room the budget leaves for a new worker: every shared worker at what it holds (heldOf),
 * the loads under way and `outsideBytes`; Infinity without a budget. A fleet whose
 * workers measure the budget full opens no other, whatever its models are charged.
 */
export function budgetRoomForNew(
  workers: SharedWorkerView[],
  settings: EvictionSettings,
  outsideBytes = 0,
): number {
  return roomBeside(workers, settings, outsideBytes, heldOf);
}

/**
 * Room the budget leaves for a load on `worker`: what it charges (`charged`, budgetRoom),
 * and no more than the worker can take without the fleet's measure passing the budget —
 * the room beside every worker at what it holds (`forNew`, budgetRoomForNew), plus what
 * this one holds beyond its charge (memory its evictions and unloads freed, which its next
 * loads reuse). So room made by evicting on a worker is room on that worker, and a load
 * grows the fleet's measure only into the budget. A measure already past the budget
 * (runtimes grown) is not the loads' to pay: evictions cannot give it back, so beyond
 * their own room they evict only for what the charge is over.
 */
export function budgetRoomOn(worker: SharedWorkerView, forNew: number, charged: number): number {
  return Math.min(charged, Math.max(0, forNew) + heldOf(worker) - chargedOf(worker));
}

export function decidePlacement(
  workers: SharedWorkerView[],
  ask: PlacementAsk,
  settings: EvictionSettings,
): PlacementDecision {
  const forNew = budgetRoomForNew(workers, settings, ask.outsideBytes);
  const charged = budgetRoom(workers, settings, ask.outsideBytes);
  const budgetLeftOn = (worker: SharedWorkerView) => budgetRoomOn(worker, forNew, charged);
  // Every worker counts against the budget above; only these may take the load.
  const targets = workers.filter((w) => w.placeable !== false);
  const largestWorker = Math.max(
    ask.newWorker ? ask.newWorker.limitBytes - ask.newWorker.idleBytes : 0,
    ...targets.map(capacityOf),
  );
  if (ask.bytes > largestWorker || (settings.budgetBytes > 0 && ask.bytes > settings.budgetBytes)) {
    return {
      kind: 'refuse',
      reason: 'too_large',
      message: `the model needs about ${mib(ask.bytes)} (measured at its last load, or first guessed), more than a shared worker (${mib(largestWorker)} beside its runtime) or MODELDOCK_MEMORY_BUDGET can hold; place it dedicated`,
    };
  }

  // 1. A worker with room, the most first; the less busy of equals.
  const withRoom = targets
    .filter((w) => roomOn(w) >= ask.bytes && budgetLeftOn(w) >= ask.bytes && !atModelLimit(w))
    .sort((a, b) => roomOn(b) - roomOn(a) || inFlightOn(a) - inFlightOn(b));
  const roomy = withRoom[0];
  if (roomy) return { kind: 'place', workerId: roomy.workerId, evict: [], youngEvicted: false };

  // 2. A new worker, if one may be opened and the budget holds it with the model.
  if (ask.newWorker && ask.newWorker.limitBytes - ask.newWorker.idleBytes >= ask.bytes) {
    if (forNew >= ask.newWorker.idleBytes + ask.bytes) return { kind: 'open' };
  }

  // 3. Eviction: old enough models first; younger ones only when that cannot make room.
  // A fleet found over its budget (a load measured more than was reserved for it, or a
  // worker's runtime grew: allocator fragmentation, caches, V8's heap) is brought back
  // gradually: a load first tries to make room for what it takes and as much again of
  // the excess, with old idle models only; failing that, for what it takes alone. Never
  // for the whole excess at once, which on one worker of small models could take more
  // than half of them and refuse the load: the excess shrinks with each load instead of
  // emptying a cache, and never grows.
  // The budget's room is each worker's own (budgetRoomOn), so are its need and excess.
  const anyExcess = targets.some((w) => budgetLeftOn(w) < 0);
  const attempts = [
    ...(anyExcess ? [{ withExcess: true, allowYoung: false }] : []),
    { withExcess: false, allowYoung: false },
    { withExcess: false, allowYoung: true },
  ];
  let tooMany = false;
  for (const { withExcess, allowYoung } of attempts) {
    let best: { workerId: string; evict: ResidentModel[]; newestUse: number } | undefined;
    for (const worker of targets) {
      const budgetLeft = budgetLeftOn(worker);
      const excess = Math.max(0, -budgetLeft);
      const exactNeed = ask.bytes - Math.max(0, budgetLeft);
      const budgetNeed = withExcess ? exactNeed + Math.min(excess, ask.bytes) : exactNeed;
      const need = Math.max(ask.bytes - roomOn(worker), budgetNeed);
      const atLeast = atModelLimit(worker) ? worker.models.length + 1 - worker.maxModels! : 0;
      const victims = victimsOn(worker, need, atLeast, ask.now, settings.minResidencyMs, allowYoung);
      if (!victims) continue;
      if (victims.length > mostEvictableFrom(worker)) {
        // Only what the load itself needs can make it a refusal; the excess is optional.
        if (!withExcess) tooMany = true;
        continue;
      }
      const newestUse = Math.max(...victims.map((v) => v.lastUsedAt));
      if (
        !best ||
        newestUse < best.newestUse ||
        (newestUse === best.newestUse && victims.length < best.evict.length)
      ) {
        best = { workerId: worker.workerId, evict: victims, newestUse };
      }
    }
    if (best) {
      const youngEvicted = best.evict.some((v) => ask.now - v.loadedAt < settings.minResidencyMs);
      return { kind: 'place', workerId: best.workerId, evict: best.evict, youngEvicted };
    }
  }

  if (tooMany) {
    return {
      kind: 'refuse',
      reason: 'would_evict_too_many',
      message: `making room for about ${mib(ask.bytes)} would evict more than half of a shared worker's models; refused rather than emptying a cache for one load`,
    };
  }
  return {
    kind: 'refuse',
    reason: 'busy',
    message: `no shared worker has room for about ${mib(ask.bytes)}${settings.budgetBytes > 0 ? ` within MODELDOCK_MEMORY_BUDGET (${mib(Math.max(forNew, ...targets.map(budgetLeftOn)))} left)` : ''}, and the models that could make room are serving requests or loading; try again shortly`,
  };
}

/** A model chosen to go, and the worker it goes from. */
export interface FleetVictim {
  workerId: string;
  model: ResidentModel;
}

/**
 * Models to evict across the shared fleet so that `need` bytes come back to the budget
 * (a dedicated server's load, which the budget bounds with the fleet): the least recently
 * used idle models of all workers, by the same rules as a placement's — nothing with
 * requests in flight or loading, nothing younger than the minimum residency while older
 * ones can cover it, never more than half of one worker's models. Undefined when those
 * rules cannot cover `need`: nothing is evicted for a room that would still not be there.
 */
export function fleetVictims(
  workers: SharedWorkerView[],
  need: number,
  now: number,
  settings: EvictionSettings,
): FleetVictim[] | undefined {
  if (need <= 0) return [];
  for (const allowYoung of [false, true]) {
    const { victims, freed } = leastRecentlyUsedAcross(
      workers,
      need,
      now,
      settings.minResidencyMs,
      allowYoung,
    );
    if (freed >= need) return victims;
  }
  return undefined;
}

/**
 * The least recently used eviction candidates of all workers until their bytes cover
 * `need` (or the candidates run out), at most half of one worker's models
 * (mostEvictableFrom); with what they free together.
 */
function leastRecentlyUsedAcross(
  workers: SharedWorkerView[],
  need: number,
  now: number,
  minResidencyMs: number,
  allowYoung: boolean,
): { victims: FleetVictim[]; freed: number } {
  const candidates = workers
    .flatMap((worker) =>
      evictionCandidates(worker.models, now, minResidencyMs, allowYoung).map((model) => ({
        workerId: worker.workerId,
        model,
      })),
    )
    .sort((a, b) => a.model.lastUsedAt - b.model.lastUsedAt);
  const cap = new Map(workers.map((w) => [w.workerId, mostEvictableFrom(w)]));
  const victims: FleetVictim[] = [];
  let freed = 0;
  for (const candidate of candidates) {
    if (freed >= need) break;
    const left = cap.get(candidate.workerId) ?? 0;
    if (left <= 0) continue;
    cap.set(candidate.workerId, left - 1);
    victims.push(candidate);
    freed += candidate.model.bytes;
  }
  return { victims, freed };
}

/**
 * Evicting ahead of need: what the fleet charges against MODELDOCK_MEMORY_BUDGET (its
 * workers, the loads under way, and `outsideBytes`) once it passes the high watermark
 * (the budget less half of `headroom`), brought back to the low one (the budget less
 * `headroom`), so that the next loads find room at once instead of each waiting on an
 * eviction of its own. The victims are the least recently used idle models of all
 * workers, by the placement's rules and stricter: nothing with requests in flight or
 * loading, nothing younger than the minimum residency (no load is waiting for this room,
 * so none is taken early), never more than half of one worker's models. As many as the
 * rules allow when they cannot cover all of it; none without a budget or a headroom, or
 * below the high watermark.
 */
export function headroomVictims(
  workers: SharedWorkerView[],
  settings: EvictionSettings & { headroomBytes: number },
  now: number,
  outsideBytes = 0,
): FleetVictim[] {
  const { budgetBytes, headroomBytes } = settings;
  if (budgetBytes <= 0 || headroomBytes <= 0) return [];
  const charged = budgetBytes - budgetRoom(workers, settings, outsideBytes);
  if (charged <= budgetBytes - headroomBytes / 2) return [];
  const need = charged - (budgetBytes - headroomBytes);
  return leastRecentlyUsedAcross(workers, need, now, settings.minResidencyMs, false).victims;
}

/**
 * What shrinking the fleet does next (docs/operations.md#a-fleet-measuring-past-its-budget):
 * nothing; drain `workerId` (evict `evict` now; the rest, busy, loading or young, at a
 * later pass); close it (it hosts nothing); or stop draining it (the fleet measures within
 * the budget again: it takes loads again).
 */
export type DrainDecision =
  | { kind: 'none' }
  | { kind: 'drain'; workerId: string; evict: ResidentModel[] }
  | { kind: 'close'; workerId: string }
  | { kind: 'stop'; workerId: string };

/**
 * Whether what the shared workers hold (each the larger of its charge and its measure,
 * heldOf) and what the budget charges outside them pass MODELDOCK_MEMORY_BUDGET: what the
 * kernel measures, not what the loads were charged. Loads under way are not counted: a
 * drain costs its models a load each elsewhere, so it answers a measure, not an estimate.
 */
export function measuredOverBudget(
  workers: SharedWorkerView[],
  settings: EvictionSettings,
  outsideBytes = 0,
): boolean {
  if (settings.budgetBytes <= 0) return false;
  return workers.reduce((sum, w) => sum + heldOf(w), outsideBytes) > settings.budgetBytes;
}

/**
 * Shrinking a fleet whose measure passed the budget. Evicting models gives the kernel
 * almost nothing back (their memory stays with the worker's allocator and V8's heap for
 * its next loads), so what the charge cannot see — each runtime's growth under requests —
 * only closing a worker returns. While the fleet measures over the budget and more than
 * one worker runs, one worker at a time is drained: it takes no more loads, its models are
 * evicted by the usual rules (never one in flight or loading; one younger than the minimum
 * residency stays until a later pass), and it is closed once it hosts nothing. The
 * measure is looked at again only after the close (the next pass).
 *
 * Which worker: the one hosting the fewest models, then the one measuring most. Every
 * worker gives back about the same when closed (its runtime dominates: ~46-96 MiB beside
 * ~0.13 MiB per m-131 model), while each model drained is a job whose next request loads
 * it elsewhere; so the fewest models cost the fewest cold loads for what comes back.
 * `draining`: the worker a previous pass chose, kept until it closes or the fleet
 * measures within the budget again (then it stops: it may take loads again).
 */
export function decideDrain(
  workers: SharedWorkerView[],
  settings: EvictionSettings,
  now: number,
  outsideBytes = 0,
  draining?: string,
): DrainDecision {
  const over = measuredOverBudget(workers, settings, outsideBytes);
  const current = workers.find((w) => w.workerId === draining);
  if (current) {
    if (!over || workers.length < 2) return { kind: 'stop', workerId: current.workerId };
    return drainStep(current, now, settings.minResidencyMs);
  }
  if (!over || workers.length < 2) return { kind: 'none' };
  const chosen = [...workers].sort((a, b) => modelCountOf(a) - modelCountOf(b) || heldOf(b) - heldOf(a))[0]!;
  return drainStep(chosen, now, settings.minResidencyMs);
}

function drainStep(worker: SharedWorkerView, now: number, minResidencyMs: number): DrainDecision {
  if (modelCountOf(worker) === 0 && (worker.reservedBytes ?? 0) === 0)
    return { kind: 'close', workerId: worker.workerId };
  const evict = evictionCandidates(worker.models, now, minResidencyMs, false);
  return { kind: 'drain', workerId: worker.workerId, evict };
}

function modelCountOf(worker: SharedWorkerView): number {
  return worker.modelCount ?? worker.models.length;
}

function atModelLimit(worker: SharedWorkerView): boolean {
  return worker.maxModels !== undefined && modelCountOf(worker) >= worker.maxModels;
}

/** The most models one placement may take from `worker` (MAX_EVICTED_SHARE, at least one). */
function mostEvictableFrom(worker: SharedWorkerView): number {
  return Math.max(1, Math.floor(worker.models.length * MAX_EVICTED_SHARE));
}

/**
 * The models that may be evicted, least recently used first: nothing with requests in
 * flight, nothing loading; nothing younger than the minimum residency unless `allowYoung`.
 */
function evictionCandidates(
  models: ResidentModel[],
  now: number,
  minResidencyMs: number,
  allowYoung: boolean,
): ResidentModel[] {
  return models
    .filter((m) => !m.loading && m.inFlight === 0)
    .filter((m) => allowYoung || now - m.loadedAt >= minResidencyMs)
    .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
}

/**
 * The fewest of `worker`'s eviction candidates whose measured bytes cover `need` (and at
 * least `atLeast` of them: a worker at its model limit); undefined when they cannot.
 */
function victimsOn(
  worker: SharedWorkerView,
  need: number,
  atLeast: number,
  now: number,
  minResidencyMs: number,
  allowYoung: boolean,
): ResidentModel[] | undefined {
  if (need <= 0 && atLeast <= 0) return [];
  const candidates = evictionCandidates(worker.models, now, minResidencyMs, allowYoung);
  const victims: ResidentModel[] = [];
  let freed = 0;
  for (const model of candidates) {
    if (freed >= need && victims.length >= atLeast) break;
    victims.push(model);
    freed += model.bytes;
  }
  return freed >= need && victims.length >= atLeast ? victims : undefined;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

/**
 * What a model is expected to take when loaded: the largest of its measured loads, else
 * a first guess — its ONNX file's size when known (the weights dominate a model's memory,
 * and ONNX Runtime holds one copy of them), else FIRST_GUESS_BYTES. The first measured
 * load replaces the guess, so a guess is used at most once per model.
 */
export class ModelSizes {
  private readonly measured = new Map<string, number>();
  /**
   * Each model's file size, as the placement that first guessed by it saw it: what its
   * load is reserved at until it is measured. Without it a load placed by its file size
   * would be reserved at FIRST_GUESS_BYTES by every later placement, which a small budget
   * takes for full (a few concurrent first loads of a small model held hundreds of MiB).
   */
  private readonly fileBytes = new Map<string, number>();

  constructor(private readonly firstGuessBytes = FIRST_GUESS_BYTES) {}

  /**
   * A load's measurement; the model keeps the largest it measured. An allocator reuses
   * memory it already holds (freed by earlier unloads), so a load can measure less than
   * the model occupies, down to nothing; its load that took fresh memory measured what it
   * holds. Below MIN_MODEL_BYTES it counts that much.
   */
  observe(model: string, bytes: number): void {
    this.measured.set(model, Math.max(MIN_MODEL_BYTES, bytes, this.measured.get(model) ?? 0));
    this.fileBytes.delete(model);
  }

  /** Whether the figure is measured (true) or a guess. */
  isMeasured(model: string): boolean {
    return this.measured.has(model);
  }

  /** `fileBytes`: the model file's size, when the caller knows it (remembered until the model is measured). */
  estimate(model: string, fileBytes?: number): number {
    const measured = this.measured.get(model);
    if (measured !== undefined) return measured;
    if (fileBytes !== undefined && fileBytes > 0) this.fileBytes.set(model, fileBytes);
    const file = this.fileBytes.get(model);
    return file === undefined ? this.firstGuessBytes : Math.max(MIN_MODEL_BYTES, file);
  }
}

/** The least a loaded model is counted as (ModelSizes.observe). */
export const MIN_MODEL_BYTES = 64 * 1024;

/** The guess for a model never loaded whose file size is unknown. */
export const FIRST_GUESS_BYTES = 64 * 1024 ** 2;
