/**
 * What the model and dataset stores hold, as the router sees them. The router checks a
 * request against the stores before it creates anything, so an unknown model is a 404
 * and not a worker that fails to load.
 */
import { access, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError } from '../errors.js';
import { ID_PATTERN, validateId } from '../ids.js';

export class Catalog {
  constructor(
    readonly modelsDir: string,
    readonly datasetsDir: string,
  ) {}

  async requireModel(model: string): Promise<void> {
    validateId('model', model);
    if (!(await exists(path.join(this.modelsDir, model, 'model.onnx')))) {
      throw new NotFoundError(`model "${model}" not found in the model store (${this.modelsDir})`);
    }
  }

  async requireDataset(dataset: string): Promise<void> {
    validateId('dataset', dataset);
    if (!(await exists(path.join(this.datasetsDir, dataset)))) {
      throw new NotFoundError(`dataset "${dataset}" not found in the dataset store (${this.datasetsDir})`);
    }
  }

  /** Size of the model's ONNX file: what its weights take once loaded, roughly. */
  async modelBytes(model: string): Promise<number> {
    try {
      return (await stat(path.join(this.modelsDir, validateId('model', model), 'model.onnx'))).size;
    } catch {
      return 0;
    }
  }

  async listModels(): Promise<string[]> {
    return listIds(this.modelsDir, (id) => exists(path.join(this.modelsDir, id, 'model.onnx')));
  }

  async listDatasets(): Promise<string[]> {
    return listIds(this.datasetsDir, async () => true);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function listIds(dir: string, keep: (id: string) => Promise<boolean>): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const ids = entries.filter((id) => ID_PATTERN.test(id));
  const kept = await Promise.all(ids.map(async (id) => ((await keep(id)) ? id : undefined)));
  return kept.filter((id): id is string => id !== undefined).sort();
}
