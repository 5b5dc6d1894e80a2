/**
 * The model configuration extension: a loaded model described as Triton's model
 * configuration (`config.pbtxt` as JSON) would describe it, derived from the ONNX graph,
 * so clients that read `GET /v2/models/{name}/config` (tritonclient, perf_analyzer) find
 * the fields they expect.
 *
 * `max_batch_size` is 0 and `dims` are the full shapes, dynamic dimensions -1: the worker
 * runs each request as it comes (no Triton-style batcher), and a model whose first
 * dimension is dynamic takes any batch size in that dimension.
 */
import { MODEL_VERSION } from './inference.js';
import type { LoadedModel } from './model-store.js';
import type { TensorSpec } from './tensors.js';

/** The protocol's tensor datatypes as model configuration's `DataType` names. */
const CONFIG_DATATYPE: Record<string, string> = {
  BOOL: 'TYPE_BOOL',
  UINT8: 'TYPE_UINT8',
  UINT16: 'TYPE_UINT16',
  UINT32: 'TYPE_UINT32',
  UINT64: 'TYPE_UINT64',
  INT8: 'TYPE_INT8',
  INT16: 'TYPE_INT16',
  INT32: 'TYPE_INT32',
  INT64: 'TYPE_INT64',
  FP16: 'TYPE_FP16',
  FP32: 'TYPE_FP32',
  FP64: 'TYPE_FP64',
  BYTES: 'TYPE_STRING',
  BF16: 'TYPE_BF16',
};

export function configDatatype(datatype: string): string {
  return CONFIG_DATATYPE[datatype] ?? 'TYPE_INVALID';
}

export interface ModelConfigTensor {
  name: string;
  data_type: string;
  dims: number[];
}

export interface ModelConfigJson {
  name: string;
  platform: string;
  backend: string;
  version_policy: { latest: { num_versions: number } };
  max_batch_size: number;
  input: (ModelConfigTensor & { format: string })[];
  output: ModelConfigTensor[];
  instance_group: { name: string; kind: string; count: number }[];
  default_model_filename: string;
  parameters: Record<string, { string_value: string }>;
}

const tensor = (spec: TensorSpec): ModelConfigTensor => ({
  name: spec.name,
  data_type: configDatatype(spec.datatype),
  dims: [...spec.shape],
});

export function modelConfig(model: LoadedModel): ModelConfigJson {
  return {
    name: model.name,
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    version_policy: { latest: { num_versions: Number(MODEL_VERSION) } },
    max_batch_size: 0,
    input: model.inputs.map((spec) => ({ ...tensor(spec), format: 'FORMAT_NONE' })),
    output: model.outputs.map(tensor),
    instance_group: [{ name: model.name, kind: 'KIND_CPU', count: 1 }],
    default_model_filename: 'model.onnx',
    parameters: { model_id: { string_value: model.modelId } },
  };
}
