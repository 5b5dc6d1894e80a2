/**
 * Open Inference Protocol JSON tensors ⇄ ONNX Runtime tensors: every datatype the worker
 * speaks converts both ways, nested data is read row-major, and each mismatch with the
 * model's declared input is refused with a message naming the problem.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { InvalidInputError } from '../../src/errors.js';
import { fromOrtTensor, toOrtTensor, type TensorSpec } from '../../src/worker/tensors.js';

const spec = (datatype: string, shape: number[] = [-1, 2]): TensorSpec => ({ name: 'x', datatype, shape });

describe('worker tensors: JSON to ONNX Runtime', () => {
  const cases: [string, unknown[], string, ArrayLike<unknown>][] = [
    ['FP32', [0.5, -1.25], 'float32', new Float32Array([0.5, -1.25])],
    ['FP64', [0.1, 1e300], 'float64', new Float64Array([0.1, 1e300])],
    ['INT32', [-7, 2147483647], 'int32', new Int32Array([-7, 2147483647])],
    ['INT64', [-3, 9007199254740991], 'int64', new BigInt64Array([-3n, 9007199254740991n])],
    ['BOOL', [true, false], 'bool', new Uint8Array([1, 0])],
    ['UINT8', [0, 255], 'uint8', new Uint8Array([0, 255])],
  ];
  for (const [datatype, data, ortType, expected] of cases) {
    it(`converts ${datatype}`, () => {
      const tensor = toOrtTensor({ name: 'x', datatype, shape: [1, 2], data }, spec(datatype));
      assert.equal(tensor.type, ortType);
      assert.deepEqual([...tensor.dims], [1, 2]);
      assert.deepEqual(Array.from(tensor.data as ArrayLike<unknown>), Array.from(expected));
    });
  }

  it('reads nested data row-major, the same as flat data', () => {
    const nested = toOrtTensor(
      {
        name: 'x',
        datatype: 'FP32',
        shape: [2, 2],
        data: [
          [1, 2],
          [3, 4],
        ],
      },
      spec('FP32'),
    );
    assert.deepEqual([...(nested.data as Float32Array)], [1, 2, 3, 4]);
  });

  const refusals: [string, Parameters<typeof toOrtTensor>[0], TensorSpec, RegExp][] = [
    [
      'another datatype',
      { name: 'x', datatype: 'FP64', shape: [1, 2], data: [1, 2] },
      spec('FP32'),
      /FP64.*expects FP32/,
    ],
    ['another rank', { name: 'x', datatype: 'FP32', shape: [2], data: [1, 2] }, spec('FP32'), /rank 2/],
    [
      'a fixed dimension differing',
      { name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] },
      spec('FP32'),
      /expects \[-1,2\]/,
    ],
    [
      'fewer elements than the shape',
      { name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2] },
      spec('FP32'),
      /2 elements; shape \[2,2\] needs 4/,
    ],
    [
      'more elements than the shape',
      { name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, 2, 3] },
      spec('FP32'),
      /3 elements/,
    ],
    [
      'a negative dimension',
      { name: 'x', datatype: 'FP32', shape: [-1, 2], data: [1, 2] },
      spec('FP32'),
      /non-negative integers/,
    ],
    [
      'a string among numbers',
      { name: 'x', datatype: 'FP32', shape: [1, 2], data: [1, '2'] },
      spec('FP32'),
      /finite number/,
    ],
    [
      'a fraction for an integer type',
      { name: 'x', datatype: 'INT32', shape: [1, 2], data: [1, 2.5] },
      spec('INT32'),
      /integer/,
    ],
    [
      'a number for BOOL',
      { name: 'x', datatype: 'BOOL', shape: [1, 2], data: [1, 0] },
      spec('BOOL'),
      /true or false/,
    ],
    [
      // Found by the fuzz target: String() of this parsed object throws (was a 500).
      'an object whose toString is not a function',
      { name: 'x', datatype: 'BOOL', shape: [1, 1, 4], data: JSON.parse('{"toString": false}') },
      spec('BOOL', [1, 1, 4]),
      /an object/,
    ],
    [
      'an unsupported datatype',
      { name: 'x', datatype: 'BYTES', shape: [1, 2], data: ['a', 'b'] },
      spec('BYTES'),
      /not supported/,
    ],
  ];
  for (const [what, input, declared, message] of refusals) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => toOrtTensor(input, declared),
        (error: unknown) => {
          assert.ok(error instanceof InvalidInputError);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }
});

describe('worker tensors: ONNX Runtime to JSON', () => {
  it('serializes INT64 as JSON numbers and BOOL as booleans, with the shape', () => {
    const int64 = fromOrtTensor('y', new ort.Tensor('int64', new BigInt64Array([5n, -2n]), [2]));
    assert.deepEqual(int64, { name: 'y', shape: [2], datatype: 'INT64', data: [5, -2] });
    assert.equal(JSON.stringify(int64.data), '[5,-2]');
    const bool = fromOrtTensor('b', new ort.Tensor('bool', new Uint8Array([1, 0]), [1, 2]));
    assert.deepEqual(bool, { name: 'b', shape: [1, 2], datatype: 'BOOL', data: [true, false] });
    const fp64 = fromOrtTensor('d', new ort.Tensor('float64', new Float64Array([0.1]), [1]));
    assert.deepEqual(fp64.data, [0.1]);
  });
});
