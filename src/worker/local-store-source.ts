/**
 * The store as local directories: `<models>/<id>/model.onnx`, `<datasets>/<id>/records.jsonl`
 * (a Docker bind mount, a hostPath or PersistentVolumeClaim on Kubernetes, the repository
 * for a local process).
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ID_PATTERN, validateId } from '../ids.js';
import { STORE_DIRS, type StoreKind } from '../worker-store-protocol.js';
import type { StoreSource } from './store-source.js';
import { isMissing, regularFileInside } from './store-files.js';

export class LocalStoreSource implements StoreSource {
  constructor(
    private readonly modelsDir: string,
    private readonly datasetsDir: string,
  ) {}

  get description(): string {
    return `${this.modelsDir}, ${this.datasetsDir}`;
  }

  async file(kind: StoreKind, id: string, file: string): Promise<string | undefined> {
    validateId(kind, id);
    try {
      return await regularFileInside(this.root(kind), path.join(id, file), kind);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async listModels(): Promise<string[]> {
    try {
      const entries = await readdir(this.modelsDir);
      const ids = await Promise.all(
        entries
          .filter((id) => ID_PATTERN.test(id))
          .map(async (id) =>
            (await stat(path.join(this.modelsDir, id, 'model.onnx')).catch(() => null)) ? id : null,
          ),
      );
      return ids.filter((id): id is string => id !== null).sort();
    } catch {
      return [];
    }
  }

  private root(kind: StoreKind): string {
    return STORE_DIRS[kind] === 'models' ? this.modelsDir : this.datasetsDir;
  }
}
