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

/** The largest dimension a tensor may have: ONNX Runtime and most clients index with int32. */
export const MAX_DIMENSION = 2 ** 31 - 1;

/** Default largest element count of one input tensor (MODELDOCK_WORKER_MAX_ELEMENTS). */
export const DEFAULT_MAX_ELEMENTS = 16 * 1024 * 1024;

export interface DecodeLimits {
  /** Most elements one input tensor may have. */
  maxElements: number;
}

const DEFAULT_LIMITS: DecodeLimits = { maxElements: DEFAULT_MAX_ELEMENTS };

/** What integers each integer datatype holds; INT64 from JSON is limited to exact doubles. */
const INTEGER_RANGES: Partial<Record<ort.Tensor.Type, [number, number]>> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** The largest finite FP32 value. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * A value for a message: never the whole of what a client sent. Objects and arrays are
 * named, not converted: String() of a parsed `{"toString": false}` throws.
 */
function preview(value: unknown): string {
  const text =
    typeof value === 'string'
      ? JSON.stringify(value)
      : value !== null && typeof value === 'object'
        ? Array.isArray(value)
          ? 'a list'
          : 'an object'
        : String(value);
  return text.length > 24 ? `${text.slice(0, 24)}…` : text;
}

/**
 * Check an input's header (datatype, shape) against the model and the limits; `binary`
 * says its values come as raw bytes (the binary tensor extension) instead of JSON `data`.
 * Returns the runtime type and the element count the shape needs.
 */
function checkHeader(
  input: V2InputTensor,
  spec: TensorSpec,
  binary: boolean,
  limits: DecodeLimits,
): { ortType: ort.Tensor.Type; elements: number } {
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
      `${where} has datatype ${String(input.datatype).slice(0, 24)}; the model expects ${spec.datatype}`,
    );
  }
  const ortType = V2_TO_ORT[input.datatype as V2Datatype];
  if (!ortType) throw new InvalidInputError(`${where}: datatype ${input.datatype} is not supported`);
  const shape: unknown = input.shape;
  // The rank first: a shape of a million entries is refused before anything walks it.
  if (!Array.isArray(shape) || shape.length !== spec.shape.length) {
    const rank = Array.isArray(shape) ? `rank ${shape.length}` : 'no list';
    throw new InvalidInputError(
      `${where} has a shape of ${rank}; the model expects rank ${spec.shape.length} ([${spec.shape}])`,
    );
  }
  let elements = 1;
  for (let i = 0; i < shape.length; i++) {
    const dim: unknown = shape[i];
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0) {
      throw new InvalidInputError(`${where}: shape must be a list of non-negative integers`);
    }
    if (dim > MAX_DIMENSION) {
      throw new InvalidInputError(
        `${where}: dimension ${i} is ${dim}; a dimension is at most ${MAX_DIMENSION} (2^31-1)`,
      );
    }
    const fixed = spec.shape[i]!;
    if (fixed >= 0 && dim !== fixed) {
      throw new InvalidInputError(`${where} has shape [${shape}]; the model expects [${spec.shape}]`);
    }
    elements *= dim;
  }
  if (elements > limits.maxElements) {
    throw new InvalidInputError(
      `${where}: shape [${shape}] has ${elements} elements; an input has at most ${limits.maxElements}`,
    );
  }
  return { ortType, elements };
}

type Typed = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array;

/**
 * JSON `data` (flat, or nested row-major as the protocol allows) straight into a typed
 * array of the size the shape needs: one pass, no intermediate list, no recursion. Nesting
 * deeper than the model's rank, a wrong element count and every value the datatype cannot
 * hold exactly are refused.
 */
function decodeJsonData(
  data: unknown,
  ortType: ort.Tensor.Type,
  shape: number[],
  elements: number,
  where: string,
): Typed {
  const rank = shape.length;
  const out = new TYPED_ARRAYS[ortType as keyof typeof TYPED_ARRAYS](elements);
  const range = INTEGER_RANGES[ortType];
  const maxDepth = Math.max(rank, 1);
  let count = 0;
  const put = (value: unknown) => {
    if (count >= elements) {
      count++; // too many: counted for the message, not stored
      return;
    }
    if (ortType === 'bool') {
      if (typeof value !== 'boolean') {
        throw new InvalidInputError(
          `${where}: element ${count} is ${preview(value)}; BOOL takes true or false`,
        );
      }
      (out as Uint8Array)[count++] = value ? 1 : 0;
      return;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new InvalidInputError(
        `${where}: element ${count} is ${preview(value)}; every element must be a finite number`,
      );
    }
    if (range) {
      if (!Number.isInteger(value) || value < range[0] || value > range[1]) {
        throw new InvalidInputError(
          `${where}: element ${count} is ${preview(value)}; ${ORT_TO_V2[ortType]} takes integers from ${range[0]} to ${range[1]}`,
        );
      }
      if (ortType === 'int64') (out as BigInt64Array)[count++] = BigInt(value);
      else (out as Int32Array)[count++] = value;
      return;
    }
    if (ortType === 'float32' && Math.abs(value) > FLOAT32_MAX) {
      throw new InvalidInputError(
        `${where}: element ${count} is ${preview(value)}; FP32 takes numbers up to ±${FLOAT32_MAX} (larger would become infinity)`,
      );
    }
    (out as Float32Array)[count++] = value;
  };
  if (!Array.isArray(data)) {
    put(data);
  } else {
    // Explicit stacks of the arrays being walked and the position in each.
    const arrays: unknown[][] = [data];
    const positions: number[] = [0];
    while (arrays.length > 0) {
      const top = arrays.length - 1;
      const array = arrays[top]!;
      const position = positions[top]!;
      if (position === array.length) {
        arrays.pop();
        positions.pop();
        continue;
      }
      positions[top] = position + 1;
      const item = array[position];
      if (Array.isArray(item)) {
        if (arrays.length >= maxDepth) {
          throw new InvalidInputError(`${where}: "data" is nested deeper than the rank ${rank} of its shape`);
        }
        arrays.push(item);
        positions.push(0);
      } else {
        put(item);
      }
    }
  }
  if (count !== elements) {
    throw new InvalidInputError(`${where} has ${count} elements; shape [${shape}] needs ${elements}`);
  }
  return out;
}

export function toOrtTensor(
  input: V2InputTensor,
  spec: TensorSpec,
  limits: DecodeLimits = DEFAULT_LIMITS,
): ort.Tensor {
  const { ortType, elements } = checkHeader(input, spec, false, limits);
  const where = `input "${input.name}"`;
  const data = decodeJsonData(input.data, ortType, input.shape, elements, where);
  return new ort.Tensor(ortType, data, input.shape);
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

/**
 * An input whose values are raw little-endian bytes, row-major (Triton's binary tensor
 * data extension): the byte count must be exactly what the shape and datatype need.
 */
export function toOrtTensorFromBytes(
  input: V2InputTensor,
  spec: TensorSpec,
  bytes: Uint8Array,
  limits: DecodeLimits = DEFAULT_LIMITS,
): ort.Tensor {
  const { ortType, elements } = checkHeader(input, spec, true, limits);
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
