/**
 * Datasets and batch inference, shared by modeldock's worker (which runs its ONNX models
 * over a dataset itself) and the router (which runs a dataset through a foreign server's
 * infer calls, since those servers have no batch endpoint of their own).
 *
 * The record format, `<datasets>/<id>/records.jsonl`, one JSON object per line:
 *   {"inputs": {"<input name>": [values of one sample, flat or nested]}, "label": <class>}
 * `inputs` may also be a list, one entry per model input in the model's input order.
 * `label` (a number or a string) is optional; with it, batch inference reports accuracy.
 */
import { InvalidInputError } from './errors.js';
import { parseJsonQuietly } from './json-text.js';

/** An input or output as the protocol's model metadata states it; -1 for a dynamic dimension. */
export interface TensorShape {
  name: string;
  datatype: string;
  shape: number[];
}

/** What batch inference needs to know about a model. */
export interface DatasetModel {
  /** The name it is served under. */
  name: string;
  /** The model's id in the store. */
  modelId: string;
  inputs: TensorShape[];
  outputs: TensorShape[];
  /** From model.json: which output is the prediction, and the classes' names. */
  manifest: { prediction_output?: string; labels?: string[] };
}

export interface BatchRequest {
  inputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[];
  outputs: { name: string }[];
}

export interface BatchOutput {
  name: string;
  shape: number[];
  data: unknown[];
}

export interface DatasetRecord {
  /** By model input name, or positional in the model's input order. */
  inputs: Record<string, unknown> | unknown[];
  label?: number | string;
}

export interface Dataset {
  id: string;
  metadata: Record<string, unknown>;
  records: DatasetRecord[];
}

/** Parse records.jsonl; every problem names its line. Blank lines are ignored. */
export function parseRecords(datasetId: string, text: string): DatasetRecord[] {
  const records: DatasetRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `dataset "${datasetId}" line ${i + 1}`;
    const parsed = parseJsonQuietly(line, where);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new InvalidInputError(`${where} is not a JSON object`);
    }
    const record = parsed as { inputs?: unknown; label?: unknown };
    if (typeof record.inputs !== 'object' || record.inputs === null) {
      throw new InvalidInputError(`${where} has no "inputs" object or list`);
    }
    if (record.label !== undefined && typeof record.label !== 'number' && typeof record.label !== 'string') {
      throw new InvalidInputError(`${where}: "label" must be a number or a string`);
    }
    records.push(record as DatasetRecord);
  }
  if (records.length === 0) throw new InvalidInputError(`dataset "${datasetId}" has no records`);
  return records;
}

export interface BatchResult {
  model_name: string;
  dataset: string;
  count: number;
  prediction_output: string;
  predictions: (number | boolean)[];
  /** The predictions as model.json's labels name them, when it has labels. */
  predicted_labels?: string[];
  accuracy: number | null;
  correct: number | null;
  duration_ms: number;
}

/** The output whose values are the predicted class: declared in model.json, else guessed. */
function predictionOutput(model: DatasetModel): { name: string; argmax: boolean } {
  const declared = model.manifest.prediction_output;
  const spec = declared
    ? model.outputs.find((s) => s.name === declared)
    : (model.outputs.find((s) => s.datatype.startsWith('INT') && s.shape.length <= 1) ?? model.outputs[0]);
  if (!spec) throw new InvalidInputError(`model "${model.name}" has no output to predict with`);
  return { name: spec.name, argmax: spec.shape.length > 1 };
}

/** Dimensions of nested arrays, following first elements: [[1,2],[3,4]] → [2, 2]. */
function nestedShape(value: unknown): number[] {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  return shape;
}

/**
 * The shape of one sample of `spec` (its dimensions after the batch one): the sample's
 * own nesting when it has the model's rank, else the model's dimensions, with at most one
 * dynamic dimension worked out from the number of values (data is row-major either way,
 * so an 8×8 image feeds a [batch, 64] input).
 */
function sampleShape(spec: TensorShape, value: unknown, where: string): number[] {
  const rest = spec.shape.slice(1);
  const nested = nestedShape(value);
  if (nested.length === rest.length) return nested;
  const length = [value].flat(Infinity).length;
  const dynamic = rest.filter((d) => d < 0).length;
  const fixed = rest.filter((d) => d >= 0).reduce((a, b) => a * b, 1);
  if (dynamic <= 1 && rest.length > 0 && fixed > 0 && length % fixed === 0) {
    return rest.map((d) => (d >= 0 ? d : length / fixed));
  }
  throw new InvalidInputError(
    `${where}: a sample of shape [${nested}] does not fit the model's input "${spec.name}" [${spec.shape}]`,
  );
}

/**
 * Run a dataset through a model in batches of `batchSize` samples (one at a time for a
 * model whose batch dimension is fixed to 1), with `run` sending one protocol infer
 * request; predictions, and accuracy when the records carry labels.
 */
export async function inferDatasetInBatches(
  model: DatasetModel,
  dataset: Dataset,
  run: (request: BatchRequest) => Promise<{ outputs: BatchOutput[] }>,
  batchSize = 256,
): Promise<BatchResult> {
  const started = performance.now();
  const { id: datasetId, records } = dataset;
  const output = predictionOutput(model);
  for (const spec of model.inputs) {
    if (spec.shape.length === 0 || (spec.shape[0]! >= 0 && spec.shape[0] !== 1)) {
      throw new InvalidInputError(
        `model "${model.modelId}" input "${spec.name}" [${spec.shape}] has no batch dimension to run a dataset through`,
      );
    }
  }
  // A model whose batch dimension is fixed to 1 gets its samples one at a time.
  const size = model.inputs.some((s) => s.shape[0] === 1) ? 1 : batchSize;
  const predictions: (number | boolean)[] = [];
  for (let offset = 0; offset < records.length; offset += size) {
    const batch = records.slice(offset, offset + size);
    const inputs: BatchRequest['inputs'] = model.inputs.map((spec, position) => {
      const data: unknown[] = [];
      let shape: number[] | undefined;
      batch.forEach((record, index) => {
        const where = `dataset "${datasetId}" record ${offset + index + 1}`;
        const value = Array.isArray(record.inputs) ? record.inputs[position] : record.inputs[spec.name];
        if (value === undefined) throw new InvalidInputError(`${where} lacks input "${spec.name}"`);
        shape ??= sampleShape(spec, value, where);
        const flat = [value].flat(Infinity);
        const expected = shape.reduce((a, b) => a * b, 1);
        if (flat.length !== expected) {
          throw new InvalidInputError(
            `${where}: input "${spec.name}" has ${flat.length} values; samples of shape [${shape}] need ${expected}`,
          );
        }
        data.push(...flat);
      });
      return { name: spec.name, datatype: spec.datatype, shape: [batch.length, ...shape!], data };
    });
    const response = await run({ inputs, outputs: [{ name: output.name }] });
    const tensor = response.outputs.find((o) => o.name === output.name) ?? response.outputs[0];
    if (!tensor || !Array.isArray(tensor.data)) {
      throw new InvalidInputError(
        `model "${model.name}" answered without output "${output.name}" as JSON data`,
      );
    }
    if (output.argmax) {
      const classes = tensor.shape[tensor.shape.length - 1]!;
      for (let row = 0; row < batch.length; row++) {
        const values = tensor.data.slice(row * classes, (row + 1) * classes) as number[];
        predictions.push(values.indexOf(Math.max(...values)));
      }
    } else {
      predictions.push(...(tensor.data as (number | boolean)[]));
    }
  }
  const labels = model.manifest.labels;
  const named = labels ? predictions.map((p) => labels[Number(p)] ?? String(p)) : undefined;
  // A record's label may be the class index or, when model.json lists labels, its name.
  const labelled = records.every((r) => r.label !== undefined);
  const correct = labelled
    ? records.filter((r, i) => String(r.label) === String(predictions[i]) || r.label === named?.[i]).length
    : null;
  return {
    model_name: model.name,
    dataset: datasetId,
    count: records.length,
    prediction_output: output.name,
    predictions,
    ...(named ? { predicted_labels: named } : {}),
    accuracy: correct === null ? null : correct / records.length,
    correct,
    duration_ms: Math.round((performance.now() - started) * 100) / 100,
  };
}
