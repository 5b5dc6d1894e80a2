/**
 * The binary tensor extension ⇄ JSON translation for servers that take JSON only
 * (json-tensors.ts): a binary request becomes the same request in JSON, the answer goes
 * back as bytes exactly for the outputs the client asked as bytes (Triton's rules), and a
 * body that does not add up is a clear 400, never a guess.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  binaryRequestToJson,
  bytesToJsonData,
  jsonAnswerToBinary,
  jsonDataToBytes,
} from '../../src/inference-grpc/json-tensors.js';
import { InvalidInputError } from '../../src/errors.js';

function binaryBody(header: object, ...parts: Buffer[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...parts]), headerLength: json.length };
}

const f32 = (...values: number[]) => Buffer.from(new Float32Array(values).buffer);

describe('binary tensors as JSON', () => {
  it('turns binary inputs into data arrays and drops the extension’s parameters', () => {
    const { body, headerLength } = binaryBody(
      {
        id: 'r1',
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } },
          { name: 'k', datatype: 'INT64', shape: [1], data: [7] },
          { name: 's', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: 13, keep: 1 } },
        ],
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
        parameters: { binary_data_output: false, priority: 2 },
      },
      f32(0.5, -1, 3),
      Buffer.from([2, 0, 0, 0, 0x68, 0x69, 3, 0, 0, 0, 0xc3, 0xa9, 0x21]),
    );
    const translated = binaryRequestToJson(body, headerLength);
    assert.deepEqual(translated.json, {
      id: 'r1',
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [1, 3], data: [0.5, -1, 3] },
        { name: 'k', datatype: 'INT64', shape: [1], data: [7] },
        { name: 's', datatype: 'BYTES', shape: [2], parameters: { keep: 1 }, data: ['hi', 'é!'] },
      ],
      outputs: [{ name: 'y' }],
      parameters: { priority: 2 },
    });
    assert.equal(translated.anyBinaryOutput, true);
    assert.equal(translated.binaryOutput('y'), true);
    assert.equal(translated.binaryOutput('z'), false, 'an output not asked as bytes stays JSON');
  });

  it('asks every output as bytes when the request says binary_data_output (the client’s default)', () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { binary_data_size: 4 } }],
        outputs: [{ name: 'json', parameters: { binary_data: false } }],
        parameters: { binary_data_output: true },
      },
      f32(1),
    );
    const translated = binaryRequestToJson(body, headerLength);
    assert.equal(translated.binaryOutput('any'), true);
    assert.equal(translated.binaryOutput('json'), false, 'an output’s own binary_data wins');
    assert.equal(translated.json.parameters, undefined);
  });

  it('leaves an all-JSON request as it is, without binary outputs', () => {
    const request = { inputs: [{ name: 'x', datatype: 'FP64', shape: [2], data: [1, 2] }] };
    const translated = binaryRequestToJson(Buffer.from(JSON.stringify(request)), undefined);
    assert.deepEqual(translated.json, request);
    assert.equal(translated.anyBinaryOutput, false);
  });

  it('refuses bodies that do not add up, with the reason', () => {
    const refuses = (body: Buffer, headerLength: number | undefined, message: RegExp) =>
      assert.throws(
        () => binaryRequestToJson(body, headerLength),
        (error: unknown) => error instanceof InvalidInputError && message.test(error.message),
      );
    const header = {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2], parameters: { binary_data_size: 8 } }],
    };
    refuses(
      binaryBody(header, f32(1)).body,
      binaryBody(header, f32(1)).headerLength,
      /does not fit the body/,
    );
    const extra = binaryBody(header, f32(1, 2, 3));
    refuses(extra.body, extra.headerLength, /4 bytes after the inputs/);
    refuses(Buffer.from('{"inputs": ['), undefined, /not valid JSON/);
    refuses(Buffer.from('{}'), undefined, /no "inputs" array/);
    refuses(Buffer.from('{}'), 99, /does not fit a body of 2 bytes/);
    const odd = binaryBody(
      { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], parameters: { binary_data_size: 3 } }] },
      Buffer.from([1, 2, 3]),
    );
    refuses(odd.body, odd.headerLength, /not a whole number of INT32 elements/);
    const half = binaryBody(
      { inputs: [{ name: 'h', datatype: 'FP16', shape: [1], parameters: { binary_data_size: 2 } }] },
      Buffer.from([0, 60]),
    );
    refuses(half.body, half.headerLength, /FP16 cannot be translated/);
    refuses(Buffer.from([1, 0, 0]), undefined, /not valid JSON/);
    assert.throws(() => bytesToJsonData('BYTES', Buffer.from([9, 0, 0, 0, 1]), 'input "s"'), /runs past/);
  });

  it('answers the outputs asked as bytes with binary_data_size and their bytes after the header', () => {
    const answer = {
      model_name: 'j1',
      id: 'r1',
      outputs: [
        { name: 'label', datatype: 'INT64', shape: [2, 1], data: [[7], [3]] },
        {
          name: 'score',
          datatype: 'FP32',
          shape: [2],
          data: [0.25, 0.5],
          parameters: { content_type: 'np' },
        },
        { name: 'ok', datatype: 'BOOL', shape: [2], data: [true, false] },
      ],
    };
    const { body, headerLength } = jsonAnswerToBinary(answer, (name) => name !== 'score');
    const header = JSON.parse(body.subarray(0, headerLength).toString());
    assert.deepEqual(header.outputs, [
      { name: 'label', datatype: 'INT64', shape: [2, 1], parameters: { binary_data_size: 16 } },
      answer.outputs[1],
      { name: 'ok', datatype: 'BOOL', shape: [2], parameters: { binary_data_size: 2 } },
    ]);
    const rest = body.subarray(headerLength);
    assert.deepEqual(
      [...new BigInt64Array(rest.buffer.slice(rest.byteOffset, rest.byteOffset + 16))],
      [7n, 3n],
    );
    assert.deepEqual([...rest.subarray(16)], [1, 0]);
  });

  it('round-trips every fixed-size datatype and BYTES through JSON', () => {
    const samples: Record<string, unknown[]> = {
      BOOL: [true, false],
      UINT8: [0, 255],
      UINT16: [65535, 1],
      UINT32: [4294967295, 0],
      UINT64: [2 ** 53 - 1, 0],
      INT8: [-128, 127],
      INT16: [-32768, 32767],
      INT32: [-2147483648, 2147483647],
      INT64: [-(2 ** 53 - 1), 42],
      FP32: [1.5, -0.25],
      FP64: [Math.PI, -1e300],
      BYTES: ['', 'modeldock'],
    };
    for (const [datatype, values] of Object.entries(samples)) {
      const bytes = jsonDataToBytes(datatype, values, datatype);
      assert.deepEqual(bytesToJsonData(datatype, bytes, datatype), values, datatype);
    }
  });
});
