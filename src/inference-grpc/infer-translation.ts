/**
 * gRPC `ModelInfer` ⇄ the worker's HTTP binary tensor extension. The router does not
 * parse tensors: typed `contents` become the little-endian bytes the binary extension
 * carries (what Triton's own HTTP client sends), `raw_input_contents` pass as they are,
 * and every output comes back as bytes in `raw_output_contents`, as Triton answers.
 * The worker checks every tensor against the model (tensors.ts); a malformed one is its
 * 400, which becomes INVALID_ARGUMENT.
 */
import { InvalidInputError } from '../errors.js';

type Contents = Partial<Record<ContentsField, unknown[]>>;

type ContentsField =
  | 'bool_contents'
  | 'int_contents'
  | 'int64_contents'
  | 'uint_contents'
  | 'uint64_contents'
  | 'fp32_contents'
  | 'fp64_contents'
  | 'bytes_contents';

export interface GrpcInferParameter {
  parameter_choice?: string;
  [key: string]: unknown;
}

export interface GrpcInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, GrpcInferParameter>;
  inputs: {
    name: string;
    datatype: string;
    shape: (number | string)[];
    parameters?: Record<string, GrpcInferParameter>;
    contents?: Contents | null;
  }[];
  outputs: { name: string; parameters?: Record<string, GrpcInferParameter> }[];
  raw_input_contents: Uint8Array[];
}

export interface GrpcInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[] }[];
  raw_output_contents: Uint8Array[];
}

/** Where each datatype's values sit in InferTensorContents, and how they become bytes. */
const TYPED: Record<
  string,
  { field: ContentsField; array: new (values: ArrayLike<never>) => ArrayBufferView }
> = {
  BOOL: { field: 'bool_contents', array: Uint8Array as never },
  UINT8: { field: 'uint_contents', array: Uint8Array as never },
  UINT16: { field: 'uint_contents', array: Uint16Array as never },
  UINT32: { field: 'uint_contents', array: Uint32Array as never },
  UINT64: { field: 'uint64_contents', array: BigUint64Array as never },
  INT8: { field: 'int_contents', array: Int8Array as never },
  INT16: { field: 'int_contents', array: Int16Array as never },
  INT32: { field: 'int_contents', array: Int32Array as never },
  INT64: { field: 'int64_contents', array: BigInt64Array as never },
  FP32: { field: 'fp32_contents', array: Float32Array as never },
  FP64: { field: 'fp64_contents', array: Float64Array as never },
};

function contentsBytes(input: GrpcInferRequest['inputs'][number]): Buffer {
  const typed = TYPED[input.datatype];
  const where = `input "${input.name}"`;
  if (!typed) {
    throw new InvalidInputError(`${where}: datatype ${input.datatype} cannot be sent as typed contents here`);
  }
  const contents = input.contents ?? {};
  const used = (Object.keys(contents) as ContentsField[]).filter((f) => (contents[f]?.length ?? 0) > 0);
  const stray = used.find((f) => f !== typed.field);
  if (stray)
    throw new InvalidInputError(
      `${where} is ${input.datatype}: its values go in ${typed.field}, not ${stray}`,
    );
  const values = contents[typed.field] ?? [];
  let view: ArrayBufferView;
  if (input.datatype === 'BOOL') {
    view = Uint8Array.from(values, (v) => (v ? 1 : 0));
  } else if (input.datatype === 'INT64' || input.datatype === 'UINT64') {
    view = new typed.array(values.map((v) => BigInt(v as string | number)) as never);
  } else {
    view = new typed.array(values.map(Number) as never);
  }
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** A gRPC request as the binary tensor extension has it: the JSON header, and the inputs' bytes in order. */
export interface BinaryInferRequest {
  header: {
    id?: string;
    inputs: { name: string; datatype: string; shape: number[]; parameters: { binary_data_size: number } }[];
    outputs?: { name: string; parameters: { binary_data: true } }[];
    parameters: { binary_data_output: true };
  };
  bytes: Uint8Array[];
}

/**
 * A gRPC request as the binary extension's parts: inputs carry `binary_data_size` and
 * their bytes follow in order; every output is asked as bytes.
 */
export function toBinaryInferRequest(request: GrpcInferRequest): BinaryInferRequest {
  const inputs = request.inputs ?? [];
  if (inputs.length === 0) throw new InvalidInputError('the request needs at least one input');
  const raw = request.raw_input_contents ?? [];
  if (raw.length > 0) {
    if (raw.length !== inputs.length) {
      throw new InvalidInputError(
        `raw_input_contents has ${raw.length} entries for ${inputs.length} inputs: give one per input, or none`,
      );
    }
    const typed = inputs.find((i) =>
      Object.values(i.contents ?? {}).some((v) => (v as unknown[])?.length > 0),
    );
    if (typed) {
      throw new InvalidInputError(`input "${typed.name}" has contents while raw_input_contents is used`);
    }
  }
  const bytes = inputs.map((input, i) => (raw.length > 0 ? raw[i]! : contentsBytes(input)));
  return {
    header: {
      ...(request.id ? { id: request.id } : {}),
      inputs: inputs.map((input, i) => ({
        name: input.name,
        datatype: input.datatype,
        shape: (input.shape ?? []).map(Number),
        parameters: { binary_data_size: bytes[i]!.byteLength },
      })),
      ...(request.outputs?.length
        ? {
            outputs: request.outputs.map((o) => ({
              name: o.name,
              parameters: { binary_data: true as const },
            })),
          }
        : {}),
      parameters: { binary_data_output: true },
    },
    bytes,
  };
}

/**
 * The worker's binary-extension body for a gRPC request: the JSON header followed by
 * the inputs' bytes.
 */
export function toWorkerInferBody(request: GrpcInferRequest): { body: Buffer; headerLength: number } {
  const { header, bytes } = toBinaryInferRequest(request);
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...bytes]), headerLength: json.length };
}

interface WorkerOutput {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: { binary_data_size?: number };
}

/** A binary-extension answer's header with its outputs' bytes (in output order) as a ModelInferResponse. */
export function fromBinaryInferAnswer(
  header: { model_name: string; model_version?: string; id?: string; outputs: WorkerOutput[] },
  outputBytes: (output: WorkerOutput) => Uint8Array,
): GrpcInferResponse {
  const raw: Uint8Array[] = [];
  const outputs = header.outputs.map((output) => {
    if (output.parameters?.binary_data_size === undefined) {
      throw new Error(`the worker answered output "${output.name}" without bytes`);
    }
    raw.push(outputBytes(output));
    return { name: output.name, datatype: output.datatype, shape: output.shape };
  });
  return {
    model_name: header.model_name,
    model_version: header.model_version ?? '1',
    id: header.id ?? '',
    outputs,
    raw_output_contents: raw,
  };
}

/** The worker's binary-extension answer as a ModelInferResponse. */
export function fromWorkerInferAnswer(answer: Buffer, headerLength: number | undefined): GrpcInferResponse {
  const jsonEnd = headerLength ?? answer.length;
  const header = JSON.parse(answer.subarray(0, jsonEnd).toString('utf8')) as Parameters<
    typeof fromBinaryInferAnswer
  >[0];
  let offset = jsonEnd;
  return fromBinaryInferAnswer(header, (output) => {
    const size = output.parameters!.binary_data_size!;
    const bytes = answer.subarray(offset, offset + size);
    offset += size;
    return bytes;
  });
}
