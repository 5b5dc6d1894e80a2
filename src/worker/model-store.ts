/**
 * The model store as the worker reads it: `<models>/<id>/model.onnx` and an optional
 * `model.json`. Without model.json, inputs and outputs come from the ONNX graph, so
 * dropping an .onnx file into a directory is enough. The files come through a
 * StoreSource (a local directory, or the router: store-source.ts).
 */
import ort from 'onnxruntime-node';
import { readFile, stat } from 'node:fs/promises';
import { InvalidInputError, NotFoundError, errorMessage } from '../errors.js';
import { validateId } from '../ids.js';
import { resolveBatching, type BatchingConfig } from './batching-config.js';
import { LocalStoreSource } from './local-store-source.js';
import type { StoreSource } from './store-source.js';
import { parseJsonQuietly } from './store-files.js';
import { v2DatatypeOf, type TensorSpec } from './tensors.js';

/** How every session of the worker is created: its models' and the boot warm-up's alike. */
export function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
}

export interface ModelManifest {
  description?: string;
  /** Output whose values are the predicted class (batch inference, accuracy). */
  prediction_output?: string;
  labels?: string[];
  /** Triton's fields: batching-config.ts. */
  max_batch_size?: unknown;
  dynamic_batching?: unknown;
  [key: string]: unknown;
}

export interface LoadedModel {
  name: string;
  modelId: string;
  session: ort.InferenceSession;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  manifest: ModelManifest;
  /** How requests are batched (model.json's max_batch_size and dynamic_batching, or the graph's defaults). */
  batching: BatchingConfig;
  loadMs: number;
  bytes: number;
}

/** A model's files, found in the store (ModelStore.find), not opened yet. */
export interface FoundModel {
  modelId: string;
  file: string;
  bytes: number;
  manifest: ModelManifest;
}

interface OrtValueMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: (number | string)[];
}

function toSpec(meta: OrtValueMetadata): TensorSpec {
  return {
    name: meta.name,
    datatype: v2DatatypeOf(meta.type ?? 'float32'),
    shape: (meta.shape ?? []).map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
  };
}

export class ModelStore {
  private readonly source: StoreSource;

  /** `source`: a StoreSource, or the models directory (a LocalStoreSource without datasets). */
  constructor(
    source: StoreSource | string,
    private readonly threads: number,
  ) {
    this.source = typeof source === 'string' ? new LocalStoreSource(source, source) : source;
  }

  async list(): Promise<string[]> {
    return this.source.listModels();
  }

  /** Create the runtime session; every failure is a clear error and nothing is kept. */
  async open(name: string, modelId: string): Promise<LoadedModel> {
    return this.openFound(name, await this.find(modelId));
  }

  /**
   * The model's files, found and read before its session is created: the file reads wait
   * on the disk and the thread pool, so a load measured around its session alone
   * (model-registry.ts) does not hold the next one while they do.
   */
  async find(modelId: string): Promise<FoundModel> {
    validateId('model', modelId);
    // Its real path, inside the store: a link out of the store is refused, not followed.
    const file = await this.source.file('model', modelId, 'model.onnx');
    if (file === undefined) {
      throw new NotFoundError(`model "${modelId}" not found in the model store (no ${modelId}/model.onnx)`);
    }
    const [bytes, manifest] = await Promise.all([stat(file).then((s) => s.size), this.readManifest(modelId)]);
    return { modelId, file, bytes, manifest };
  }

  /** Create the session of a model `find` found; every failure is a clear error and nothing is kept. */
  async openFound(name: string, found: FoundModel): Promise<LoadedModel> {
    const { modelId, file, bytes, manifest } = found;
    const started = performance.now();
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(file, sessionOptions(this.threads));
    } catch (error) {
      throw new InvalidInputError(
        `model "${modelId}" cannot be loaded: ${errorMessage(error).split('\n')[0]}`,
      );
    }
    const loadMs = Math.round((performance.now() - started) * 100) / 100;
    const meta = session as unknown as {
      inputMetadata?: OrtValueMetadata[];
      outputMetadata?: OrtValueMetadata[];
    };
    const names = (list: readonly string[]): OrtValueMetadata[] =>
      list.map((n) => ({ name: n, isTensor: true }));
    const inputMeta = meta.inputMetadata ?? names(session.inputNames);
    const outputMeta = meta.outputMetadata ?? names(session.outputNames);
    const inputs = inputMeta.map(toSpec);
    const outputs = outputMeta.map(toSpec);
    let batching: BatchingConfig;
    try {
      const declared = manifest.prediction_output;
      if (declared !== undefined && !outputs.some((o) => o.name === declared)) {
        throw new InvalidInputError(
          `model "${modelId}": model.json names prediction_output "${declared}", which is not an output (outputs: ${outputs.map((o) => o.name).join(', ')})`,
        );
      }
      batching = resolveBatching(
        modelId,
        manifest,
        [...inputMeta, ...outputMeta].map((m) => m.shape?.[0]),
      );
    } catch (error) {
      // Nothing half-loaded: the session is released before the load is refused.
      await session.release();
      throw error;
    }
    return { name, modelId, session, inputs, outputs, manifest, batching, loadMs, bytes };
  }

  private async readManifest(modelId: string): Promise<ModelManifest> {
    const file = await this.source.file('model', modelId, 'model.json');
    if (file === undefined) return {};
    const text = await readFile(file, 'utf8');
    return checkManifest(modelId, parseJsonQuietly(text, `model "${modelId}": model.json`));
  }
}

/** model.json is optional, but when present its known fields must make sense. */
export function checkManifest(modelId: string, parsed: unknown): ModelManifest {
  const invalid = (what: string) => new InvalidInputError(`model "${modelId}": model.json ${what}`);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid('must be a JSON object');
  }
  const manifest = parsed as ModelManifest;
  if (manifest.description !== undefined && typeof manifest.description !== 'string') {
    throw invalid('"description" must be a string');
  }
  if (manifest.prediction_output !== undefined && typeof manifest.prediction_output !== 'string') {
    throw invalid('"prediction_output" must be the name of an output');
  }
  if (
    manifest.labels !== undefined &&
    (!Array.isArray(manifest.labels) || !manifest.labels.every((l) => typeof l === 'string'))
  ) {
    throw invalid('"labels" must be a list of strings (label of class i at index i)');
  }
  return manifest;
}
