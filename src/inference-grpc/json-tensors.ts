/**
 * The binary tensor extension ⇄ JSON tensors, for serving runtimes that accept only
 * JSON (MLServer answers 422 to a binary body). A client's binary request (its JSON
 * header, then each input's little-endian bytes, as Triton's clients send by default)
 * becomes one JSON request with `data` arrays; the server's JSON answer becomes the
 * binary answer the client asked for (the outputs it wanted as bytes carry
 * `binary_data_size`, their bytes follow the header). gRPC requests, which the router
 * turns into the binary form first (infer-translation.ts), take the same way.
 *
 * What JSON cannot carry exactly is refused or said: FP16 and BF16 have no JSON
 * translation here (400), and 64-bit integers pass as JSON numbers, exact up to 2^53.
 */
import { InvalidInputError } from '../errors.js';

/** Element size and little-endian reader/writer of each fixed-size datatype. */
interface Codec {
  bytes: number;
  read: (view: DataView, offset: number) => number | boolean;
  write: (view: DataView, offset: number, value: unknown) => void;
}

const num = (value: unknown): number => Number(value);
const big = (value: unknown): bigint => BigInt(Math.trunc(num(value)));

const CODECS: Record<string, Codec> = {
  BOOL: { bytes: 1, read: (v, o) => v.getUint8(o) !== 0, write: (v, o, x) => v.setUint8(o, x ? 1 : 0) },
  UINT8: { bytes: 1, read: (v, o) => v.getUint8(o), write: (v, o, x) => v.setUint8(o, num(x)) },
  UINT16: {
    bytes: 2,
    read: (v, o) => v.getUint16(o, true),
    write: (v, o, x) => v.setUint16(o, num(x), true),
  },
  UINT32: {
    bytes: 4,
    read: (v, o) => v.getUint32(o, true),
    write: (v, o, x) => v.setUint32(o, num(x), true),
  },
  UINT64: {
    bytes: 8,
    read: (v, o) => Number(v.getBigUint64(o, true)),
    write: (v, o, x) => v.setBigUint64(o, big(x), true),
  },
  INT8: { bytes: 1, read: (v, o) => v.getInt8(o), write: (v, o, x) => v.setInt8(o, num(x)) },
  INT16: { bytes: 2, read: (v, o) => v.getInt16(o, true), write: (v, o, x) => v.setInt16(o, num(x), true) },
  INT32: { bytes: 4, read: (v, o) => v.getInt32(o, true), write: (v, o, x) => v.setInt32(o, num(x), true) },
  INT64: {
    bytes: 8,
    read: (v, o) => Number(v.getBigInt64(o, true)),
    write: (v, o, x) => v.setBigInt64(o, big(x), true),
  },
  FP32: {
    bytes: 4,
    read: (v, o) => v.getFloat32(o, true),
    write: (v, o, x) => v.setFloat32(o, num(x), true),
  },
  FP64: {
    bytes: 8,
    read: (v, o) => v.getFloat64(o, true),
    write: (v, o, x) => v.setFloat64(o, num(x), true),
  },
};

function untranslatable(datatype: string, where: string): InvalidInputError {
  return new InvalidInputError(
    `${where}: datatype ${datatype} cannot be translated to JSON tensors for this model's server, which does not accept the binary tensor extension; send it as JSON`,
  );
}

/** One tensor's bytes (binary extension layout) as a JSON `data` array. */
export function bytesToJsonData(datatype: string, bytes: Uint8Array, where: string): unknown[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (datatype === 'BYTES') {
    // Each element: a little-endian uint32 length, then that many bytes.
    const out: string[] = [];
    let offset = 0;
    while (offset < bytes.byteLength) {
      if (offset + 4 > bytes.byteLength)
        throw new InvalidInputError(`${where}: BYTES data ends inside a length`);
      const length = view.getUint32(offset, true);
      offset += 4;
      if (offset + length > bytes.byteLength) {
        throw new InvalidInputError(`${where}: a BYTES element of ${length} bytes runs past the data`);
      }
      out.push(Buffer.from(bytes.buffer, bytes.byteOffset + offset, length).toString('utf8'));
      offset += length;
    }
    return out;
  }
  const codec = CODECS[datatype];
  if (!codec) throw untranslatable(datatype, where);
  if (bytes.byteLength % codec.bytes !== 0) {
    throw new InvalidInputError(
      `${where}: ${bytes.byteLength} bytes are not a whole number of ${datatype} elements (${codec.bytes} bytes each)`,
    );
  }
  const out = new Array<unknown>(bytes.byteLength / codec.bytes);
  for (let i = 0; i < out.length; i++) out[i] = codec.read(view, i * codec.bytes);
  return out;
}

/** A JSON `data` array (flat or nested, as servers answer) as the binary extension's bytes. */
export function jsonDataToBytes(datatype: string, data: unknown, where: string): Buffer {
  const values = Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data];
  if (datatype === 'BYTES') {
    const parts = values.flatMap((value) => {
      const text = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(text.byteLength);
      return [length, text];
    });
    return Buffer.concat(parts);
  }
  const codec = CODECS[datatype];
  if (!codec)
    throw new Error(`${where}: the server answered datatype ${datatype}, which has no binary form here`);
  const out = Buffer.alloc(values.length * codec.bytes);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  values.forEach((value, i) => codec.write(view, i * codec.bytes, value));
  return out;
}

type Parameters = Record<string, unknown>;

interface JsonTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Parameters;
  data?: unknown;
}

export interface JsonInferRequest {
  id?: string;
  parameters?: Parameters;
  inputs: JsonTensor[];
  outputs?: { name: string; parameters?: Parameters }[];
}

export interface TranslatedRequest {
  /** The request with every tensor as JSON and the binary extension's parameters gone. */
  json: JsonInferRequest;
  /** Which of the answer's outputs the client wants as bytes (none: it wants JSON). */
  binaryOutput: (name: string) => boolean;
  /** Whether any output is wanted as bytes. */
  anyBinaryOutput: boolean;
}

function withoutKeys(parameters: Parameters | undefined, keys: string[]): Parameters | undefined {
  if (!parameters) return undefined;
  const rest = Object.fromEntries(Object.entries(parameters).filter(([key]) => !keys.includes(key)));
  return Object.keys(rest).length > 0 ? rest : undefined;
}

function withParameters<T extends { parameters?: Parameters }>(
  tensor: T,
  parameters: Parameters | undefined,
): T {
  const { parameters: _dropped, ...rest } = tensor;
  return (parameters ? { ...rest, parameters } : rest) as T;
}

/**
 * A binary-extension request (its JSON header of `headerLength` bytes, then the inputs'
 * bytes in order; no header length: the whole body is JSON) as a JSON request, and which
 * outputs the client wants back as bytes (Triton's rules: an output's `binary_data`,
 * else the request's `binary_data_output`).
 */
export function binaryRequestToJson(body: Buffer, headerLength: number | undefined): TranslatedRequest {
  const jsonEnd = headerLength ?? body.byteLength;
  if (!Number.isInteger(jsonEnd) || jsonEnd < 0 || jsonEnd > body.byteLength) {
    throw new InvalidInputError(
      `Inference-Header-Content-Length ${String(headerLength)} does not fit a body of ${body.byteLength} bytes`,
    );
  }
  let header: JsonInferRequest;
  try {
    header = JSON.parse(body.subarray(0, jsonEnd).toString('utf8')) as JsonInferRequest;
  } catch {
    throw new InvalidInputError('the inference request header is not valid JSON');
  }
  if (header === null || typeof header !== 'object' || !Array.isArray(header.inputs)) {
    throw new InvalidInputError('the inference request has no "inputs" array');
  }
  let offset = jsonEnd;
  const inputs = header.inputs.map((input, i) => {
    const where = `input "${String(input?.name ?? i)}"`;
    const size = input?.parameters?.binary_data_size;
    const parameters = withoutKeys(input?.parameters, ['binary_data_size']);
    if (size === undefined) return withParameters(input, parameters);
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || offset + size > body.byteLength) {
      throw new InvalidInputError(`${where}: binary_data_size ${String(size)} does not fit the body`);
    }
    const data = bytesToJsonData(String(input.datatype), body.subarray(offset, offset + size), where);
    offset += size;
    return { ...withParameters(input, parameters), data };
  });
  if (offset !== body.byteLength) {
    throw new InvalidInputError(
      `the body has ${body.byteLength - offset} bytes after the inputs' binary data that no input claims`,
    );
  }
  const allBinary = header.parameters?.binary_data_output === true;
  const wanted = new Map<string, boolean>();
  const outputs = header.outputs?.map((output) => {
    const own = output?.parameters?.binary_data;
    wanted.set(String(output?.name), typeof own === 'boolean' ? own : allBinary);
    return withParameters(output, withoutKeys(output?.parameters, ['binary_data', 'classification']));
  });
  const parameters = withoutKeys(header.parameters, ['binary_data_output']);
  const binaryOutput = (name: string) => wanted.get(name) ?? allBinary;
  return {
    json: {
      ...withParameters(header, parameters),
      inputs,
      ...(outputs ? { outputs } : {}),
    },
    binaryOutput,
    anyBinaryOutput: allBinary || [...wanted.values()].some(Boolean),
  };
}

export interface JsonInferAnswer {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Parameters;
  outputs: JsonTensor[];
}

/**
 * A server's JSON answer as the binary extension's answer: the outputs the client wants
 * as bytes carry `binary_data_size` instead of `data`, and their bytes follow the header
 * in the header's order.
 */
export function jsonAnswerToBinary(
  answer: JsonInferAnswer,
  binaryOutput: (name: string) => boolean,
): { body: Buffer; headerLength: number } {
  const bytes: Buffer[] = [];
  const outputs = (answer.outputs ?? []).map((output) => {
    if (!binaryOutput(output.name)) return output;
    const data = jsonDataToBytes(output.datatype, output.data, `output "${output.name}"`);
    bytes.push(data);
    const { data: _data, ...rest } = output;
    return { ...rest, parameters: { ...output.parameters, binary_data_size: data.byteLength } };
  });
  const header = Buffer.from(JSON.stringify({ ...answer, outputs }));
  return { body: Buffer.concat([header, ...bytes]), headerLength: header.byteLength };
}
