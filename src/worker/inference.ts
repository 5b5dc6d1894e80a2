/** Running a loaded model: one v2 request, or a whole dataset in batches. */
import type ort from 'onnxruntime-node';
import { InvalidInputError, errorMessage } from '../errors.js';
import { inferDatasetInBatches, type BatchResult, type Dataset } from '../dataset-batches.js';
import type { LoadedModel } from './model-store.js';
import {
  binaryOutput,
  fromOrtTensor,
  toOrtTensor,
  toOrtTensorFromBytes,
  type DecodeLimits,
  type V2OutputHeader,
  type V2InputTensor,
  type V2OutputTensor,
} from './tensors.js';

/** The one version every model is served as (the protocol's optional version segment). */
export const MODEL_VERSION = '1';

export interface V2InferRequest {
  id?: string;
  inputs: V2InputTensor[];
  outputs?: { name: string; parameters?: { binary_data?: unknown } }[];
  parameters?: Record<string, unknown>;
}

export interface V2InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: (V2OutputTensor | V2OutputHeader)[];
}

/** Where one request spent its time, in nanoseconds (the statistics extension). */
export interface InferTimings {
  queueNs: number;
  inputNs: number;
  inferNs: number;
  outputNs: number;
}

/** The time between two `performance.now()` readings as the protocol's integer nanoseconds. */
export function elapsedNs(fromMs: number, toMs: number): number {
  return Math.max(0, Math.round((toMs - fromMs) * 1e6));
}

/** A response and, with the binary tensor extension, the output bytes that follow it. */
export interface InferResult {
  response: V2InferResponse;
  /** In the order of the outputs that have `parameters.binary_data_size`. */
  binary: Uint8Array[];
}

/** JSON tensors only (binary output requests ignored): what batch inference uses. */
export async function infer(
  model: LoadedModel,
  request: V2InferRequest,
): Promise<V2InferResponse & { outputs: V2OutputTensor[] }> {
  const { response } = await inferWithBinary(model, request, undefined, false);
  return response as V2InferResponse & { outputs: V2OutputTensor[] };
}

/**
 * A request checked against its model and decoded into the runtime's tensors, ready to
 * run alone or stacked with others (batched-run.ts).
 */
export interface PreparedRequest {
  feeds: Record<string, ort.Tensor>;
  /** The outputs to compute, in the answer's order, and whether each goes back as bytes. */
  wanted: { name: string; binary: boolean }[];
  id?: string;
  /**
   * Rows along the batch dimension (the first dimension, shared by every input), or
   * undefined when the inputs do not share one.
   */
  rows: number | undefined;
  /**
   * Requests with equal keys can run as one call: the same datatypes and shapes beyond
   * the batch dimension, the same requested outputs and the same parameters (but for
   * binary_data_output, which only encodes the answer).
   */
  batchKey: string;
}

/**
 * Check and decode one inference request. `binary` is the part of the body after the
 * JSON header when the binary tensor extension is used: inputs with
 * `parameters.binary_data_size` take their bytes from it, in input order, and every byte
 * must be used. Outputs are sent as bytes when asked (`outputs[].parameters.binary_data`
 * or the request's `parameters.binary_data_output`) and `binaryOutputs` allows it.
 */
export function prepareRequest(
  model: LoadedModel,
  request: V2InferRequest,
  binary?: Uint8Array,
  binaryOutputs = true,
  limits?: DecodeLimits,
): PreparedRequest {
  if (!request || !Array.isArray(request.inputs) || request.inputs.length === 0) {
    throw new InvalidInputError('the request needs a non-empty "inputs" list');
  }
  const feeds: Record<string, ort.Tensor> = {};
  let offset = 0;
  for (const input of request.inputs) {
    if (typeof input?.name !== 'string') throw new InvalidInputError('every input needs a "name"');
    const spec = model.inputs.find((s) => s.name === input.name);
    if (!spec) {
      throw new InvalidInputError(
        `model "${model.name}" has no input "${input.name}" (inputs: ${model.inputs.map((s) => s.name).join(', ')})`,
      );
    }
    if (feeds[input.name]) throw new InvalidInputError(`input "${input.name}" is given twice`);
    const size = input.parameters?.binary_data_size;
    if (size === undefined) {
      feeds[input.name] = toOrtTensor(input, spec, limits);
      continue;
    }
    if (!binary) {
      throw new InvalidInputError(
        `input "${input.name}" has binary_data_size but the request carries no binary data (Inference-Header-Content-Length)`,
      );
    }
    if (
      typeof size !== 'number' ||
      !Number.isInteger(size) ||
      size < 0 ||
      offset + size > binary.byteLength
    ) {
      throw new InvalidInputError(
        `input "${input.name}": binary_data_size ${String(size)} does not fit the ${binary.byteLength - offset} bytes left`,
      );
    }
    feeds[input.name] = toOrtTensorFromBytes(input, spec, binary.subarray(offset, offset + size), limits);
    offset += size;
  }
  if (binary && offset !== binary.byteLength) {
    throw new InvalidInputError(
      `the request carries ${binary.byteLength} bytes of binary data; its inputs use ${offset}`,
    );
  }
  const missing = model.inputs.filter((s) => !feeds[s.name]).map((s) => s.name);
  if (missing.length > 0) throw new InvalidInputError(`missing input(s): ${missing.join(', ')}`);

  if (request.outputs !== undefined && !Array.isArray(request.outputs)) {
    throw new InvalidInputError('"outputs" must be a list of {"name": ...}');
  }
  const allBinary = request.parameters?.binary_data_output === true;
  const wanted = (request.outputs ?? model.outputs).map((o) => {
    const name = o?.name;
    if (typeof name !== 'string' || !model.outputs.some((s) => s.name === name)) {
      throw new InvalidInputError(`model "${model.name}" has no output "${String(name)}"`);
    }
    const asBytes = (o as { parameters?: { binary_data?: unknown } })?.parameters?.binary_data ?? allBinary;
    return { name, binary: binaryOutputs && asBytes === true };
  });
  const tensors = model.inputs.map((s) => feeds[s.name]!);
  const first = tensors[0]!.dims[0];
  const rows = tensors.every((t) => t.dims.length > 0 && t.dims[0] === first) ? first : undefined;
  // binary_data_output only says how this request's answer is encoded (done per request):
  // JSON and binary clients share batches. Every other parameter keeps requests apart.
  const { binary_data_output: _encoding, ...parameters } = request.parameters ?? {};
  const batchKey = JSON.stringify([
    tensors.map((t) => [t.type, t.dims.slice(1)]),
    wanted.map((o) => o.name),
    Object.keys(parameters).length > 0 ? parameters : null,
  ]);
  return { feeds, wanted, ...(request.id === undefined ? {} : { id: request.id }), rows, batchKey };
}

/** One ONNX Runtime call; what the runtime refuses is the client's input (a 400). */
export async function runModel(
  model: LoadedModel,
  feeds: Record<string, ort.Tensor>,
  outputNames: string[],
): Promise<ort.InferenceSession.OnnxValueMapType> {
  try {
    return await model.session.run(feeds, outputNames);
  } catch (error) {
    // The model loaded and every input passed the checks, so what the runtime refuses
    // now is the combination the client sent (shapes that do not broadcast, an index
    // out of range...): the client's error, said in the runtime's first line.
    throw new InvalidInputError(
      `model "${model.name}" cannot run on these inputs: ${errorMessage(error).split('\n')[0]!.slice(0, 300)}`,
    );
  }
}

/** The answer to a prepared request from the tensors its run produced. */
export function answer(
  model: LoadedModel,
  prepared: PreparedRequest,
  results: Record<string, ort.Tensor>,
): InferResult {
  const bytes: Uint8Array[] = [];
  const outputs = prepared.wanted.map(({ name, binary: asBytes }) => {
    const tensor = results[name]!;
    if (!asBytes) return fromOrtTensor(name, tensor);
    const { header, bytes: data } = binaryOutput(name, tensor);
    bytes.push(data);
    return header;
  });
  return {
    response: {
      model_name: model.name,
      model_version: MODEL_VERSION,
      ...(prepared.id === undefined ? {} : { id: prepared.id }),
      outputs,
    },
    binary: bytes,
  };
}

/** One inference request on its own, start to end (see prepareRequest). */
export async function inferWithBinary(
  model: LoadedModel,
  request: V2InferRequest,
  binary?: Uint8Array,
  binaryOutputs = true,
  limits?: DecodeLimits,
  /** Filled with the time spent converting inputs, running the model and converting outputs. */
  timings?: InferTimings,
): Promise<InferResult> {
  const started = performance.now();
  const prepared = prepareRequest(model, request, binary, binaryOutputs, limits);
  const inputsReady = performance.now();
  const results = await runModel(
    model,
    prepared.feeds,
    prepared.wanted.map((o) => o.name),
  );
  const ran = performance.now();
  const result = answer(model, prepared, results as Record<string, ort.Tensor>);
  if (timings) {
    timings.inputNs = elapsedNs(started, inputsReady);
    timings.inferNs = elapsedNs(inputsReady, ran);
    timings.outputNs = elapsedNs(ran, performance.now());
  }
  return result;
}

/** The dataset through the model in batches (dataset-batches.ts), JSON tensors only. */
export async function inferDataset(
  model: LoadedModel,
  dataset: Dataset,
  batchSize = 256,
): Promise<BatchResult> {
  return inferDatasetInBatches(model, dataset, (request) => infer(model, request), batchSize);
}
