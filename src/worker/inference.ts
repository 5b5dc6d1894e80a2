/** Running a loaded model: one v2 request, or a whole dataset in batches. */
import type ort from 'onnxruntime-node';
import { InvalidInputError } from '../errors.js';
import type { DatasetRecord } from './dataset-store.js';
import type { LoadedModel } from './model-store.js';
import { fromOrtTensor, toOrtTensor, type V2InputTensor, type V2OutputTensor } from './tensors.js';

export interface V2InferRequest {
  id?: string;
  inputs: V2InputTensor[];
  outputs?: { name: string }[];
  parameters?: Record<string, unknown>;
}

export interface V2InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: V2OutputTensor[];
}

export async function infer(model: LoadedModel, request: V2InferRequest): Promise<V2InferResponse> {
  if (!request || !Array.isArray(request.inputs) || request.inputs.length === 0) {
    throw new InvalidInputError('the request needs a non-empty "inputs" list');
  }
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of request.inputs) {
    if (typeof input?.name !== 'string') throw new InvalidInputError('every input needs a "name"');
    const spec = model.inputs.find((s) => s.name === input.name);
    if (!spec) {
      throw new InvalidInputError(
        `model "${model.name}" has no input "${input.name}" (inputs: ${model.inputs.map((s) => s.name).join(', ')})`,
      );
    }
    if (feeds[input.name]) throw new InvalidInputError(`input "${input.name}" is given twice`);
    feeds[input.name] = toOrtTensor(input, spec);
  }
  const missing = model.inputs.filter((s) => !feeds[s.name]).map((s) => s.name);
  if (missing.length > 0) throw new InvalidInputError(`missing input(s): ${missing.join(', ')}`);

  const wanted = request.outputs?.map((o) => o?.name) ?? model.outputs.map((s) => s.name);
  for (const name of wanted) {
    if (typeof name !== 'string' || !model.outputs.some((s) => s.name === name)) {
      throw new InvalidInputError(`model "${model.name}" has no output "${String(name)}"`);
    }
  }
  const results = await model.session.run(feeds, wanted);
  return {
    model_name: model.name,
    model_version: '1',
    ...(request.id === undefined ? {} : { id: request.id }),
    outputs: wanted.map((name) => fromOrtTensor(name, results[name]!)),
  };
}

export interface BatchResult {
  model_name: string;
  dataset: string;
  count: number;
  prediction_output: string;
  predictions: (number | boolean)[];
  accuracy: number | null;
  correct: number | null;
  duration_ms: number;
}

/** The output whose values are the predicted class: declared in model.json, else guessed. */
function predictionOutput(model: LoadedModel): { name: string; argmax: boolean } {
  const declared = model.manifest.prediction_output;
  if (declared) {
    const spec = model.outputs.find((s) => s.name === declared);
    if (!spec) throw new InvalidInputError(`model.json names prediction_output "${declared}", not an output`);
    return { name: declared, argmax: spec.shape.length > 1 };
  }
  const integer = model.outputs.find((s) => s.datatype.startsWith('INT') && s.shape.length <= 1);
  if (integer) return { name: integer.name, argmax: false };
  return { name: model.outputs[0]!.name, argmax: true };
}

export async function inferDataset(
  model: LoadedModel,
  datasetId: string,
  records: DatasetRecord[],
  batchSize = 256,
): Promise<BatchResult> {
  const started = performance.now();
  const output = predictionOutput(model);
  const predictions: (number | boolean)[] = [];
  for (let offset = 0; offset < records.length; offset += batchSize) {
    const batch = records.slice(offset, offset + batchSize);
    const inputs: V2InputTensor[] = model.inputs.map((spec) => {
      const data: unknown[] = [];
      let sampleShape: number[] | undefined;
      for (const record of batch) {
        const value = record.inputs[spec.name];
        if (value === undefined) {
          throw new InvalidInputError(
            `dataset "${datasetId}" record ${offset + predictions.length} lacks input "${spec.name}"`,
          );
        }
        const flat = [value].flat(Infinity);
        sampleShape ??= spec.shape.slice(1).map((d) => (d >= 0 ? d : flat.length));
        data.push(...flat);
      }
      return {
        name: spec.name,
        datatype: spec.datatype,
        shape: [batch.length, ...(sampleShape ?? [])],
        data,
      };
    });
    const response = await infer(model, { inputs, outputs: [{ name: output.name }] });
    const tensor = response.outputs[0]!;
    if (output.argmax) {
      const classes = tensor.shape[tensor.shape.length - 1]!;
      for (let row = 0; row < batch.length; row++) {
        const values = tensor.data.slice(row * classes, (row + 1) * classes) as number[];
        predictions.push(values.indexOf(Math.max(...values)));
      }
    } else {
      predictions.push(...tensor.data);
    }
  }
  const labelled = records.every((r) => r.label !== undefined);
  const correct = labelled
    ? records.filter((r, i) => String(r.label) === String(predictions[i])).length
    : null;
  return {
    model_name: model.name,
    dataset: datasetId,
    count: records.length,
    prediction_output: output.name,
    predictions,
    accuracy: correct === null ? null : correct / records.length,
    correct,
    duration_ms: Math.round((performance.now() - started) * 100) / 100,
  };
}
