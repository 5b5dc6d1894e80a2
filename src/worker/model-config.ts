/**
 * The model configuration extension: a loaded model described as Triton's model
 * configuration (`config.pbtxt` as JSON) would describe it, derived from the ONNX graph,
 * so clients that read `GET /v2/models/{name}/config` (tritonclient, perf_analyzer) find
 * the fields they expect.
 *
 * What is in force, as Triton says it: a model that batches (batching-config.ts) has its
 * `max_batch_size` and `dims` without the batch dimension, and `dynamic_batching` when
 * the batcher is on (whether its delay adapts is modeldock's own, in `parameters` as
 * `dynamic_batching_delay`: `adaptive` or `fixed`); a model that cannot batch has
 * `max_batch_size` 0 and its full shapes. Dynamic dimensions are -1.
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

export interface DynamicBatchingJson {
  preferred_batch_size: number[];
  max_queue_delay_microseconds: number;
  preserve_ordering: boolean;
  default_queue_policy: {
    timeout_action: 'REJECT';
    default_timeout_microseconds: number;
    allow_timeout_override: boolean;
    max_queue_size: number;
  };
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
  dynamic_batching?: DynamicBatchingJson;
}

export function modelConfig(model: LoadedModel): ModelConfigJson {
  const { maxBatchSize, dynamic } = model.batching;
  // With max_batch_size above 0, Triton's dims leave the batch dimension out.
  const tensor = (spec: TensorSpec): ModelConfigTensor => ({
    name: spec.name,
    data_type: configDatatype(spec.datatype),
    dims: maxBatchSize > 0 ? spec.shape.slice(1) : [...spec.shape],
  });
  return {
    name: model.name,
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    version_policy: { latest: { num_versions: Number(MODEL_VERSION) } },
    max_batch_size: maxBatchSize,
    input: model.inputs.map((spec) => ({ ...tensor(spec), format: 'FORMAT_NONE' })),
    output: model.outputs.map(tensor),
    instance_group: [{ name: model.name, kind: 'KIND_CPU', count: 1 }],
    default_model_filename: 'model.onnx',
    parameters: {
      model_id: { string_value: model.modelId },
      ...(dynamic
        ? { dynamic_batching_delay: { string_value: dynamic.adaptive ? 'adaptive' : 'fixed' } }
        : {}),
    },
    ...(dynamic
      ? {
          dynamic_batching: {
            preferred_batch_size: dynamic.preferredBatchSizes,
            max_queue_delay_microseconds: dynamic.maxQueueDelayUs,
            preserve_ordering: false,
            default_queue_policy: {
              timeout_action: 'REJECT' as const,
              default_timeout_microseconds: 0,
              allow_timeout_override: false,
              max_queue_size: dynamic.maxQueueSize,
            },
          },
        }
      : {}),
  };
}
