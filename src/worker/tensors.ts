/**
 * Open Inference Protocol JSON tensors ⇄ ONNX Runtime tensors, checked against what the
 * model declares: names, datatypes, ranks, fixed dimensions, element counts.
 */
import ort from 'onnxruntime-node';
import { InvalidInputError } from '../errors.js';

export type V2Datatype = 'BOOL' | 'UINT8' | 'INT8' | 'INT16' | 'INT32' | 'INT64' | 'FP32' | 'FP64';

const ORT_TO_V2: Record<string, V2Datatype> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float32: 'FP32',
  float64: 'FP64',
};

const V2_TO_ORT = Object.fromEntries(Object.entries(ORT_TO_V2).map(([k, v]) => [v, k])) as Record<
  V2Datatype,
  ort.Tensor.Type
>;

export interface TensorSpec {
  name: string;
  datatype: V2Datatype | string;
  /** -1 for a dynamic dimension. */
  shape: number[];
}

export interface V2InputTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown;
  parameters?: Record<string, unknown>;
}

/** An output sent as binary data: its values follow the JSON part of the response. */
export interface V2OutputHeader {
  name: string;
  shape: number[];
  datatype: string;
  parameters: { binary_data_size: number };
}

export interface V2OutputTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: (number | boolean)[];
}

export function v2DatatypeOf(ortType: string): V2Datatype | string {
  return ORT_TO_V2[ortType] ?? ortType.toUpperCase();
}

/** Flatten nested arrays (row-major), as the protocol allows either form. */
function flatten(data: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(data)) {
    for (const item of data) flatten(item, out);
  } else {
    out.push(data);
  }
  return out;
}

/**
 * Check an input's header (datatype, shape) against the model; `binary` says its values
 * come as raw bytes (the binary tensor extension) instead of JSON `data`.
 */
function checkHeader(input: V2InputTensor, spec: TensorSpec, binary: boolean): ort.Tensor.Type {
  const where = `input "${input.name}"`;
  const fields = binary ? (['datatype', 'shape'] as const) : (['datatype', 'shape', 'data'] as const);
  const absent = fields.filter((field) => input[field] === undefined);
  if (absent.length > 0) {
    throw new InvalidInputError(`${where} lacks ${absent.map((f) => `"${f}"`).join(', ')}`);
  }
  if (binary && input.data !== undefined) {
    throw new InvalidInputError(`${where} has both "data" and binary_data_size`);
  }
  if (input.datatype !== spec.datatype) {
    throw new InvalidInputError(
      `${where} has datatype ${input.datatype}; the model expects ${spec.datatype}`,
    );
  }
  const ortType = V2_TO_ORT[input.datatype as V2Datatype];
  if (!ortType) throw new InvalidInputError(`${where}: datatype ${input.datatype} is not supported`);
  if (!Array.isArray(input.shape) || !input.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new InvalidInputError(`${where}: shape must be a list of non-negative integers`);
  }
  if (input.shape.length !== spec.shape.length) {
    throw new InvalidInputError(
      `${where} has shape [${input.shape}]; the model expects rank ${spec.shape.length} ([${spec.shape}])`,
    );
  }
  spec.shape.forEach((dim, i) => {
    if (dim >= 0 && input.shape[i] !== dim) {
      throw new InvalidInputError(`${where} has shape [${input.shape}]; the model expects [${spec.shape}]`);
    }
  });
  return ortType;
}

export function toOrtTensor(input: V2InputTensor, spec: TensorSpec): ort.Tensor {
  const ortType = checkHeader(input, spec, false);
  const values = flatten(input.data);
  const expected = input.shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) {
    throw new InvalidInputError(
      `input "${input.name}" has ${values.length} elements; shape [${input.shape}] needs ${expected}`,
    );
  }
  return new ort.Tensor(ortType, typedArray(ortType, values, `input "${input.name}"`), input.shape);
}

/** Bytes per element of each datatype in the binary tensor extension (BOOL: one byte). */
const ELEMENT_BYTES: Record<V2Datatype, number> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP32: 4,
  FP64: 8,
};

const TYPED_ARRAYS = {
  bool: Uint8Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

/**
 * An input whose values are raw little-endian bytes, row-major (Triton's binary tensor
 * data extension): the byte count must be exactly what the shape and datatype need.
 */
export function toOrtTensorFromBytes(input: V2InputTensor, spec: TensorSpec, bytes: Uint8Array): ort.Tensor {
  const ortType = checkHeader(input, spec, true);
  const elements = input.shape.reduce((a, b) => a * b, 1);
  const expected = elements * ELEMENT_BYTES[input.datatype as V2Datatype];
  if (bytes.byteLength !== expected) {
    throw new InvalidInputError(
      `input "${input.name}" has ${bytes.byteLength} bytes of binary data; ${input.datatype} [${input.shape}] needs ${expected}`,
    );
  }
  // A copy into a fresh, aligned buffer: the slice of the request body may sit at any offset.
  const aligned = new Uint8Array(expected);
  aligned.set(bytes);
  const Typed = TYPED_ARRAYS[ortType as keyof typeof TYPED_ARRAYS];
  const data = new Typed(aligned.buffer, 0, elements);
  if (ortType === 'bool' && data.some((v) => v !== 0 && v !== 1)) {
    throw new InvalidInputError(`input "${input.name}": BOOL bytes must be 0 or 1`);
  }
  return new ort.Tensor(ortType, data, input.shape);
}

/** An output as raw bytes for the binary tensor extension, with its JSON header. */
export function binaryOutput(
  name: string,
  tensor: ort.Tensor,
): { header: V2OutputHeader; bytes: Uint8Array } {
  const data = tensor.data as ArrayBufferView;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return {
    header: {
      name,
      shape: [...tensor.dims],
      datatype: v2DatatypeOf(tensor.type),
      parameters: { binary_data_size: bytes.byteLength },
    },
    bytes,
  };
}

function typedArray(type: ort.Tensor.Type, values: unknown[], where: string) {
  const numbers = () => {
    for (const v of values) {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        throw new InvalidInputError(`${where}: every element must be a finite number`);
      }
    }
    return values as number[];
  };
  const integers = () => {
    const n = numbers();
    if (!n.every(Number.isInteger)) throw new InvalidInputError(`${where}: every element must be an integer`);
    return n;
  };
  switch (type) {
    case 'float32':
      return Float32Array.from(numbers());
    case 'float64':
      return Float64Array.from(numbers());
    case 'int32':
      return Int32Array.from(integers());
    case 'int16':
      return Int16Array.from(integers());
    case 'int8':
      return Int8Array.from(integers());
    case 'uint8':
      return Uint8Array.from(integers());
    case 'int64':
      return BigInt64Array.from(integers().map((v) => BigInt(v)));
    case 'bool':
      if (!values.every((v) => typeof v === 'boolean')) {
        throw new InvalidInputError(`${where}: every element must be true or false`);
      }
      return Uint8Array.from(values.map((v) => (v ? 1 : 0)));
    default:
      throw new InvalidInputError(`${where}: datatype not supported`);
  }
}

export function fromOrtTensor(name: string, tensor: ort.Tensor): V2OutputTensor {
  const data: (number | boolean)[] = [];
  const raw = tensor.data as ArrayLike<number | bigint | boolean>;
  for (let i = 0; i < raw.length; i++) {
    const value = raw[i]!;
    data.push(
      tensor.type === 'bool' ? Boolean(value) : typeof value === 'bigint' ? Number(value) : (value as number),
    );
  }
  return { name, shape: [...tensor.dims], datatype: v2DatatypeOf(tensor.type), data };
}
