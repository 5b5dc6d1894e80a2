/**
 * The models this worker holds in memory, by the name they are served under. Loads of
 * different names run side by side; concurrent loads of one name share one load; a
 * failed load leaves nothing behind but its reason. Unloading releases the ONNX Runtime
 * session so the memory goes back.
 */
import { ConflictError, NotFoundError, errorMessage } from '../errors.js';
import type { LoadedModel, ModelStore } from './model-store.js';

export type ModelState = 'READY' | 'LOADING' | 'UNAVAILABLE';

export interface RegistryEntry {
  name: string;
  modelId: string;
  state: ModelState;
  reason: string;
}

export class ModelRegistry {
  private readonly loaded = new Map<string, LoadedModel>();
  private readonly loading = new Map<string, { modelId: string; promise: Promise<LoadedModel> }>();
  private readonly failures = new Map<string, { modelId: string; reason: string }>();

  constructor(private readonly store: ModelStore) {}

  async load(name: string, modelId: string): Promise<{ model: LoadedModel; alreadyLoaded: boolean }> {
    const current = this.loaded.get(name);
    if (current && current.modelId === modelId) return { model: current, alreadyLoaded: true };
    const inFlight = this.loading.get(name);
    if (inFlight) {
      if (inFlight.modelId !== modelId) {
        throw new ConflictError(`"${name}" is being loaded from model ${inFlight.modelId}, not ${modelId}`);
      }
      return { model: await inFlight.promise, alreadyLoaded: false };
    }
    const promise = this.store.open(name, modelId);
    this.loading.set(name, { modelId, promise });
    try {
      const model = await promise;
      if (current) await this.release(current);
      this.loaded.set(name, model);
      this.failures.delete(name);
      return { model, alreadyLoaded: false };
    } catch (error) {
      this.failures.set(name, { modelId, reason: errorMessage(error) });
      throw error;
    } finally {
      this.loading.delete(name);
    }
  }

  async unload(name: string): Promise<boolean> {
    const inFlight = this.loading.get(name);
    if (inFlight) await inFlight.promise.catch(() => undefined);
    const model = this.loaded.get(name);
    this.failures.delete(name);
    if (!model) return false;
    this.loaded.delete(name);
    await this.release(model);
    return true;
  }

  get(name: string): LoadedModel {
    const model = this.loaded.get(name);
    if (!model) {
      const failure = this.failures.get(name);
      throw new NotFoundError(
        failure ? `model "${name}" failed to load: ${failure.reason}` : `model "${name}" is not loaded`,
      );
    }
    return model;
  }

  isLoaded(name: string): boolean {
    return this.loaded.has(name);
  }

  names(): string[] {
    return [...this.loaded.keys()].sort();
  }

  entries(): RegistryEntry[] {
    const out: RegistryEntry[] = [];
    for (const [name, m] of this.loaded) out.push({ name, modelId: m.modelId, state: 'READY', reason: '' });
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

  async close(): Promise<void> {
    for (const name of [...this.loaded.keys()]) await this.unload(name);
  }

  private async release(model: LoadedModel): Promise<void> {
    await model.session.release();
    // Give V8 a chance to drop the JS side of the session's tensors too, when allowed.
    (globalThis as { gc?: () => void }).gc?.();
  }
}
