/**
 * The models this worker holds in memory, by the name they are served under. Loads of
 * different names run side by side; concurrent loads of one name share one load; a
 * failed load leaves nothing behind but its reason. Unloading releases the ONNX Runtime
 * session so the memory goes back — but only once the inferences already running on it
 * have finished, since releasing a session under a running inference would crash the
 * process.
 *
 * Each load is accounted by the worker's measured memory (memory-meter.ts) just before
 * and just after it: what the model cost is what the kernel saw it take, per model. Loads
 * are measured one at a time — two measured together would each count the other — and
 * unloading a model gives its bytes back (the slot and its figure go together). After
 * unloads the worker collects its garbage in full (heap-compaction.ts), between measured
 * loads, so that what it measures comes back to its runtime and its models.
 */
import { ConflictError, NotFoundError, errorMessage } from '../errors.js';
import { HeapCompaction } from './heap-compaction.js';
import { rssMeter, type MemoryMeter } from './memory-meter.js';
import type { LoadedModel, ModelStore } from './model-store.js';

export type ModelState = 'READY' | 'LOADING' | 'UNAVAILABLE';

export interface RegistryEntry {
  name: string;
  modelId: string;
  state: ModelState;
  reason: string;
  /** Measured memory of a READY model: the worker's growth over its load. */
  memoryBytes?: number;
}

/** A model just opened, and what opening it cost in measured memory. */
interface Measured {
  model: LoadedModel;
  memoryBytes: number;
}

/** A loaded model and the inferences currently running on its session. */
interface Slot {
  model: LoadedModel;
  memoryBytes: number;
  running: number;
  /** Resolved when `running` drops to zero after the slot was retired. */
  drained?: () => void;
}

export class ModelRegistry {
  private readonly loaded = new Map<string, Slot>();
  private readonly loading = new Map<string, { modelId: string; promise: Promise<Measured> }>();
  private readonly failures = new Map<string, { modelId: string; reason: string }>();
  /** The load being measured; the next one starts when it ends. */
  private measuring: Promise<unknown> = Promise.resolve();
  private readonly compaction: HeapCompaction | undefined;

  /**
   * `collectGarbage`: a full collection of the V8 heap, by default the `gc` a worker
   * started with --expose-gc has (workerSpec sets it; without it, nothing is collected).
   */
  constructor(
    private readonly store: ModelStore,
    private readonly meter: MemoryMeter = rssMeter,
    collectGarbage: (() => void) | undefined = (globalThis as { gc?: () => void }).gc,
  ) {
    if (collectGarbage) this.compaction = new HeapCompaction(() => this.betweenLoads(collectGarbage));
  }

  /**
   * Serve `modelId` under `name`. Already loaded from the same model: a no-op. Loaded
   * from another model: the new one replaces it once loaded (the old one is released).
   */
  async load(name: string, modelId: string): Promise<{ model: LoadedModel; alreadyLoaded: boolean }> {
    const current = this.loaded.get(name);
    if (current && current.model.modelId === modelId) return { model: current.model, alreadyLoaded: true };
    const inFlight = this.loading.get(name);
    if (inFlight) {
      if (inFlight.modelId !== modelId) {
        throw new ConflictError(`"${name}" is being loaded from model ${inFlight.modelId}, not ${modelId}`);
      }
      return { model: (await inFlight.promise).model, alreadyLoaded: false };
    }
    const promise = this.openMeasured(name, modelId);
    this.loading.set(name, { modelId, promise });
    try {
      const { model, memoryBytes } = await promise;
      const previous = this.loaded.get(name);
      this.loaded.set(name, { model, memoryBytes, running: 0 });
      this.failures.delete(name);
      if (previous) await this.retire(previous);
      return { model, alreadyLoaded: false };
    } catch (error) {
      this.failures.set(name, { modelId, reason: errorMessage(error) });
      throw error;
    } finally {
      this.loading.delete(name);
    }
  }

  /** Release what is served under `name`; false when nothing was loaded (a no-op). */
  async unload(name: string): Promise<boolean> {
    const inFlight = this.loading.get(name);
    if (inFlight) await inFlight.promise.catch(() => undefined);
    const slot = this.loaded.get(name);
    this.failures.delete(name);
    if (!slot) return false;
    this.loaded.delete(name);
    await this.retire(slot);
    return true;
  }

  /** Run `work` on the model served under `name`; an unload waits for it to finish. */
  async use<T>(name: string, work: (model: LoadedModel) => Promise<T>): Promise<T> {
    const slot = this.slot(name);
    slot.running++;
    try {
      return await work(slot.model);
    } finally {
      slot.running--;
      if (slot.running === 0) slot.drained?.();
    }
  }

  get(name: string): LoadedModel {
    return this.slot(name).model;
  }

  isLoaded(name: string): boolean {
    return this.loaded.has(name);
  }

  names(): string[] {
    return [...this.loaded.keys()].sort();
  }

  entries(): RegistryEntry[] {
    const out: RegistryEntry[] = [];
    for (const [name, { model, memoryBytes }] of this.loaded) {
      out.push({ name, modelId: model.modelId, state: 'READY', reason: '', memoryBytes });
    }
    for (const [name, l] of this.loading) {
      if (!this.loaded.has(name)) out.push({ name, modelId: l.modelId, state: 'LOADING', reason: '' });
    }
    for (const [name, f] of this.failures) {
      if (!this.loaded.has(name) && !this.loading.has(name)) {
        out.push({ name, modelId: f.modelId, state: 'UNAVAILABLE', reason: f.reason });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Measured memory of each loaded model, by name. */
  memoryByName(): Record<string, number> {
    return Object.fromEntries([...this.loaded].map(([name, slot]) => [name, slot.memoryBytes]));
  }

  async close(): Promise<void> {
    this.compaction?.close();
    await Promise.all([...this.loading.values()].map((l) => l.promise.catch(() => undefined)));
    await Promise.all([...this.loaded.keys()].map((name) => this.unload(name)));
  }

  private slot(name: string): Slot {
    const slot = this.loaded.get(name);
    if (!slot) {
      const failure = this.failures.get(name);
      throw new NotFoundError(
        failure ? `model "${name}" failed to load: ${failure.reason}` : `model "${name}" is not loaded`,
      );
    }
    return slot;
  }

  /**
   * Open a model between two readings of the meter, after the load measured before it
   * (its files are found and read first, outside the turn).
   * A reading that fell (the garbage collector ran meanwhile) counts as nothing, not as
   * memory given back.
   */
  private async openMeasured(name: string, modelId: string): Promise<Measured> {
    // Found (files read) before its turn: only the session's creation is measured.
    const found = await this.store.find(modelId);
    const measure = async (): Promise<Measured> => {
      const before = await this.meter.read();
      const model = await this.store.openFound(name, found);
      const after = await this.meter.read().catch(() => before);
      return { model, memoryBytes: Math.max(0, after.bytes - before.bytes) };
    };
    const result = this.measuring.then(measure, measure);
    this.measuring = result.catch(() => undefined);
    return result;
  }

  /** Wait for the inferences running on a slot no longer served, then free its memory. */
  private async retire(slot: Slot): Promise<void> {
    if (slot.running > 0) await new Promise<void>((resolve) => (slot.drained = resolve));
    await slot.model.session.release();
    this.compaction?.unloaded();
  }

  /**
   * Run `work` in the measuring turn, after the load measured now: a collection inside a
   * load's two readings would make that load measure less than it took.
   */
  private betweenLoads(work: () => void): void {
    const run = () => work();
    this.measuring = this.measuring.then(run, run).catch(() => undefined);
  }
}
