/**
 * Fuzz target for the worker's tensor decoding (JSON `data` and the binary tensor
 * extension), as fast-check property tests: whatever arrives, decoding either yields a
 * tensor that is exactly what the request says (shape, element count, every value
 * unchanged) or refuses with an InvalidInputError (a 400). Nothing else: no RangeError
 * from deep nesting, no silent wrap, no allocation the limits do not allow.
 *
 * Bounded in time so it runs in `npm test` (FUZZ_SECONDS, default 5 per target; the
 * seed is printed on failure by fast-check and can be replayed with FUZZ_SEED).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isModeldockError } from '../../src/errors.js';
import {
  toOrtTensor,
  toOrtTensorFromBytes,
  type TensorSpec,
  type V2InputTensor,
} from '../../src/worker/tensors.js';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 5);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const MAX_ELEMENTS = 4096;

const DATATYPES = ['BOOL', 'UINT8', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64'] as const;
const RANGES: Record<string, [number, number]> = {
  UINT8: [0, 255],
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-(2 ** 31), 2 ** 31 - 1],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

const settings = (runs: number): fc.Parameters<unknown> => ({
  numRuns: runs,
  interruptAfterTimeLimit: SECONDS * 1000,
  ...(SEED === undefined ? {} : { seed: SEED }),
});

/** Specs as models declare them: fixed and dynamic (-1) dimensions, ranks 0 to 4. */
const specArbitrary = fc.record({
  name: fc.constant('x'),
  datatype: fc.constantFrom(...DATATYPES),
  shape: fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 6 })), { maxLength: 4 }),
});

const dimension = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 6 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(-1, 1.5, 2 ** 31 - 1, 2 ** 31, 2 ** 53, 2 ** 60, Number.NaN, Infinity),
  },
);

const scalar = fc.oneof(
  fc.integer({ min: -300, max: 300 }),
  fc.double(),
  fc.boolean(),
  fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 2 ** 53, 2 ** 63, -0, 65536, 1e308),
  fc.string({ maxLength: 3 }),
  fc.constant(null),
);

/** Nested data shaped like `shape` (mostly), or junk, or very deep nesting. */
function dataFor(shape: number[]): fc.Arbitrary<unknown> {
  const wellShaped = (dims: number[]): fc.Arbitrary<unknown> =>
    dims.length === 0
      ? scalar
      : fc.array(wellShaped(dims.slice(1)), {
          minLength: Math.min(dims[0]!, 8),
          maxLength: Math.min(dims[0]!, 8),
        });
  const safe = shape.every((d) => Number.isInteger(d) && d >= 0 && d <= 6);
  return fc.oneof(
    { weight: 4, arbitrary: safe ? wellShaped(shape) : fc.constant([]) },
    { weight: 2, arbitrary: fc.array(scalar, { maxLength: 40 }) },
    { weight: 1, arbitrary: fc.anything({ maxDepth: 4 }) },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 1, max: 50_000 })
        .map((depth) => JSON.parse(`${'['.repeat(depth)}1${']'.repeat(depth)}`) as unknown),
    },
  );
}

function flatValues(data: unknown): unknown[] {
  // The reference: plain recursion is fine here, the cases that reach it are shallow.
  return Array.isArray(data) ? data.flatMap(flatValues) : [data];
}

function expectRefusal(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (isModeldockError(error) && error.code === 'invalid_input') return;
    throw error;
  }
}

describe('fuzz: tensor decoding', () => {
  it('JSON data: a faithful tensor or a 400, nothing else', () => {
    const input = specArbitrary.chain((spec) =>
      fc
        .record({
          datatype: fc.oneof(
            { weight: 8, arbitrary: fc.constant(spec.datatype) },
            fc.constantFrom(...DATATYPES, 'FP16', 'BYTES'),
          ),
          shape: fc.oneof(
            { weight: 6, arbitrary: fc.constant(spec.shape.map((d) => (d < 0 ? 2 : d))) },
            fc.array(dimension, { maxLength: 5 }),
          ),
        })
        .chain(({ datatype, shape }) =>
          dataFor(shape).map((data) => ({
            spec: spec as TensorSpec,
            input: { name: 'x', datatype, shape, data },
          })),
        ),
    );
    fc.assert(
      fc.property(input, ({ spec, input: tensorInput }) => {
        let tensor;
        try {
          tensor = toOrtTensor(tensorInput as V2InputTensor, spec, { maxElements: MAX_ELEMENTS });
        } catch (error) {
          if (isModeldockError(error) && error.code === 'invalid_input') return;
          throw error;
        }
        // Accepted: exactly what was asked for.
        assert.deepEqual([...tensor.dims], tensorInput.shape);
        const values = flatValues(tensorInput.data);
        assert.equal(tensor.data.length, values.length);
        assert.ok(values.length <= MAX_ELEMENTS);
        const data = tensor.data as ArrayLike<number | bigint>;
        values.forEach((value, i) => {
          const stored = data[i]!;
          if (tensorInput.datatype === 'BOOL') assert.equal(stored, value ? 1 : 0);
          else if (tensorInput.datatype === 'FP32')
            assert.ok(Object.is(stored, Math.fround(value as number)));
          else if (tensorInput.datatype === 'FP64') assert.ok(Object.is(stored, value));
          else {
            const [min, max] = RANGES[tensorInput.datatype]!;
            assert.ok(
              typeof value === 'number' && value >= min && value <= max,
              `${value} accepted as ${tensorInput.datatype}`,
            );
            assert.ok(Number(stored) === value, `${value} stored as ${stored}`);
          }
        });
      }),
      settings(5000),
    );
  });

  it('binary data: a faithful tensor or a 400, nothing else', () => {
    const input = specArbitrary.chain((spec) =>
      fc.record({
        spec: fc.constant(spec as TensorSpec),
        datatype: fc.oneof(
          { weight: 8, arbitrary: fc.constant(spec.datatype) },
          fc.constantFrom(...DATATYPES),
        ),
        shape: fc.oneof(
          { weight: 6, arbitrary: fc.constant(spec.shape.map((d) => (d < 0 ? 2 : d))) },
          fc.array(dimension, { maxLength: 5 }),
        ),
        bytes: fc.uint8Array({ maxLength: 600 }),
        offset: fc.integer({ min: 0, max: 7 }),
      }),
    );
    fc.assert(
      fc.property(input, ({ spec, datatype, shape, bytes, offset }) => {
        // The binary part sits at any offset of the request body.
        const body = new Uint8Array(bytes.length + offset);
        body.set(bytes, offset);
        const slice = body.subarray(offset);
        const tensorInput = { name: 'x', datatype, shape, data: undefined } as unknown as V2InputTensor;
        let tensor;
        try {
          tensor = toOrtTensorFromBytes(tensorInput, spec, slice, { maxElements: MAX_ELEMENTS });
        } catch (error) {
          if (isModeldockError(error) && error.code === 'invalid_input') return;
          throw error;
        }
        assert.deepEqual([...tensor.dims], shape);
        const view = tensor.data as ArrayBufferView;
        assert.deepEqual(new Uint8Array(view.buffer, view.byteOffset, view.byteLength), bytes);
        if (datatype === 'BOOL') assert.ok(bytes.every((b) => b === 0 || b === 1));
      }),
      settings(5000),
    );
  });

  it('deep nesting at any depth is a 400, not a stack overflow', () => {
    const spec: TensorSpec = { name: 'x', datatype: 'FP32', shape: [-1, -1] };
    for (const depth of [3, 100, 10_000, 200_000]) {
      const data = JSON.parse(`${'['.repeat(depth)}1${']'.repeat(depth)}`) as unknown;
      expectRefusal(() => toOrtTensor({ name: 'x', datatype: 'FP32', shape: [1, 1], data }, spec));
      assert.throws(
        () => toOrtTensor({ name: 'x', datatype: 'FP32', shape: [1, 1], data }, spec),
        /nested deeper/,
      );
    }
  });
});
