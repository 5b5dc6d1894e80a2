/**
 * What the model and dataset stores hold, as the router sees them. The router checks a
 * request against the stores before it creates anything, so an unknown model is a 404
 * and not a worker that fails to load.
 */
import { access, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { ID_PATTERN, validateId } from '../ids.js';
import { isMissing, regularFileInside } from '../confined-path.js';
import { parseJsonQuietly } from '../json-text.js';
import { parseRecords, type Dataset, type DatasetModel } from '../dataset-batches.js';
import type { ModelServing, ServingRuntime, ServingRuntimes } from './serving-runtimes.js';

export class Catalog {
  constructor(
    readonly modelsDir: string,
    readonly datasetsDir: string,
    /** The serving-runtime catalog; without it every model is served by modeldock's worker. */
    readonly servingRuntimes?: ServingRuntimes,
  ) {}

  /** A model is a directory with model.json (any format) or model.onnx (an ONNX model). */
  async requireModel(model: string): Promise<void> {
    validateId('model', model);
    if (!(await isModel(path.join(this.modelsDir, model)))) {
      throw new NotFoundError(`model "${model}" not found in the model store (${this.modelsDir})`);
    }
  }

  /**
   * The serving runtime the model runs on (serving-runtimes.ts); an InvalidInputError
   * naming the formats served when none serves it.
   */
  async servingRuntime(model: string): Promise<ServingRuntime | undefined> {
    if (!this.servingRuntimes) return undefined;
    return this.servingRuntimes.select(model, await this.modelServing(model));
  }

  /** What model.json says about the model's format and runtime; model.onnx alone means ONNX. */
  async modelServing(model: string): Promise<ModelServing> {
    const dir = path.join(this.modelsDir, validateId('model', model));
    const manifest = await this.manifest(model);
    const text = (key: string): string | undefined => {
      const value = manifest[key];
      if (value === undefined) return undefined;
      if (typeof value !== 'string' || value === '') {
        throw new InvalidInputError(`model ${model}: model.json's "${key}" must be a non-empty string`);
      }
      return value;
    };
    const format = text('format') ?? ((await exists(path.join(dir, 'model.onnx'))) ? 'onnx' : undefined);
    return { format, runtime: text('runtime') };
  }

  /**
   * What batch inference on a foreign server needs from model.json: the prediction
   * output and the classes' names (docs/model-and-dataset-files.md).
   */
  async batchManifest(model: string): Promise<DatasetModel['manifest']> {
    const manifest = await this.manifest(model);
    const labels = manifest.labels;
    const output = manifest.prediction_output;
    return {
      ...(typeof output === 'string' ? { prediction_output: output } : {}),
      ...(Array.isArray(labels) && labels.every((l) => typeof l === 'string') ? { labels } : {}),
    };
  }

  /** A dataset's records, read inside the dataset store only (a link out of it is refused). */
  async readDataset(dataset: string): Promise<Dataset> {
    validateId('dataset', dataset);
    const file = await regularFileInside(
      this.datasetsDir,
      path.join(dataset, 'records.jsonl'),
      'dataset',
    ).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError(`dataset "${dataset}" not found (no ${dataset}/records.jsonl)`);
      }
      throw error;
    });
    return { id: dataset, metadata: {}, records: parseRecords(dataset, await readFile(file, 'utf8')) };
  }

  private async manifest(model: string): Promise<Record<string, unknown>> {
    let text: string;
    try {
      // Inside the model store only, and a regular file (as the worker reads it).
      const file = await regularFileInside(
        this.modelsDir,
        path.join(validateId('model', model), 'model.json'),
        'model',
      );
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (isMissing(error)) return {};
      throw error;
    }
    const manifest = parseJsonQuietly(text, `model ${model}: model.json`);
    if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
      throw new InvalidInputError(`model ${model}: model.json must be a JSON object`);
    }
    return manifest as Record<string, unknown>;
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
    return listIds(this.modelsDir, (id) => isModel(path.join(this.modelsDir, id)));
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

async function isModel(dir: string): Promise<boolean> {
  return (await exists(path.join(dir, 'model.onnx'))) || (await exists(path.join(dir, 'model.json')));
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
