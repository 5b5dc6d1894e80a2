/**
 * No cross-talk under dynamic batching, as a property (fast-check): 10,000 requests sent
 * to the worker at once, each with inputs no other request has, get exactly their own
 * results — whatever mix of rows, widths, requested outputs, parameters, JSON or binary
 * tensors in and out the generator draws. On the real ONNX Runtime `doubler` model
 * (twice = 2x, plus_one = x + 1, exact for these integers), so every value is checked.
 * Two runs of 10,000 (PROPERTY_RUNS to change; FUZZ_SEED replays a failure).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { buildWorkerApp, type WorkerApp } from '../../src/worker/app.js';
import { TEST_MODELS_DIR, ensureDoublerModel } from '../helpers/models.js';

const REQUESTS = 10_000;
const RUNS = Number(process.env.PROPERTY_RUNS ?? 2);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

interface Shape {
  rows: number;
  width: number;
  outputs: 'both' | 'twice' | 'plus_one';
  binaryIn: boolean;
  binaryOut: boolean;
  tagged: boolean;
}

const shapeArbitrary: fc.Arbitrary<Shape> = fc.record({
  rows: fc.integer({ min: 1, max: 4 }),
  width: fc.integer({ min: 1, max: 3 }),
  outputs: fc.constantFrom('both', 'twice', 'plus_one'),
  binaryIn: fc.boolean(),
  binaryOut: fc.boolean(),
  tagged: fc.boolean(),
});

/** A request's body: values unique to request `index` (index × 16 + position, exact in FP32). */
function body(
  index: number,
  shape: Shape,
): { payload: Buffer; headers: Record<string, string>; values: number[] } {
  const values = Array.from({ length: shape.rows * shape.width }, (_, j) => index * 16 + j);
  const tensorShape = [shape.rows, shape.width];
  const input = shape.binaryIn
    ? { name: 'x', datatype: 'FP32', shape: tensorShape, parameters: { binary_data_size: values.length * 4 } }
    : { name: 'x', datatype: 'FP32', shape: tensorShape, data: values };
  const names = shape.outputs === 'both' ? ['twice', 'plus_one'] : [shape.outputs];
  const header = {
    id: `r${index}`,
    inputs: [input],
    outputs: names.map((name) => ({ name, parameters: { binary_data: shape.binaryOut } })),
    ...(shape.tagged ? { parameters: { tag: 'a' } } : {}),
  };
  const json = Buffer.from(JSON.stringify(header));
  if (!shape.binaryIn) return { payload: json, headers: { 'content-type': 'application/json' }, values };
  return {
    payload: Buffer.concat([json, Buffer.from(Float32Array.from(values).buffer)]),
    headers: { 'inference-header-content-length': String(json.length) },
    values,
  };
}

/** The outputs of an answer as name → values, reading binary parts where they are. */
function outputsOf(
  raw: Buffer,
  headerLength: string | undefined,
): { id: string; outputs: Map<string, number[]> } {
  const jsonLength = headerLength === undefined ? raw.length : Number(headerLength);
  const answer = JSON.parse(raw.subarray(0, jsonLength).toString('utf8'));
  const outputs = new Map<string, number[]>();
  let offset = jsonLength;
  for (const output of answer.outputs) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) {
      outputs.set(output.name, output.data);
    } else {
      const bytes = raw.subarray(offset, offset + size);
      offset += size;
      outputs.set(output.name, [
        ...new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + size)),
      ]);
    }
  }
  return { id: answer.id, outputs };
}

describe('worker: dynamic batching has no cross-talk (property)', () => {
  let worker: WorkerApp;
  let root: string;
  before(async () => {
    const id = await ensureDoublerModel();
    root = await mkdtemp(path.join(os.tmpdir(), 'modeldock-batching-property-'));
    await mkdir(path.join(root, 'doubler'));
    await copyFile(path.join(TEST_MODELS_DIR, id, 'model.onnx'), path.join(root, 'doubler/model.onnx'));
    worker = await buildWorkerApp({ modelsDir: root, datasetsDir: root });
    const loaded = await worker.app.inject({ method: 'POST', url: '/v2/repository/models/doubler/load' });
    assert.equal(loaded.statusCode, 200, loaded.body);
  });
  after(async () => {
    await worker?.app.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it(`${REQUESTS} concurrent requests with distinct inputs each get exactly their own results`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(shapeArbitrary, { minLength: REQUESTS, maxLength: REQUESTS }),
        async (shapes) => {
          const stats = async () =>
            (await worker.app.inject({ method: 'GET', url: '/v2/models/doubler/stats' })).json()
              .model_stats[0];
          const before = await stats();
          const answers = await Promise.all(
            shapes.map((shape, index) => {
              const { payload, headers, values } = body(index, shape);
              return worker.app
                .inject({ method: 'POST', url: '/v2/models/doubler/infer', payload, headers })
                .then((response) => ({ response, values, shape, index }));
            }),
          );
          for (const { response, values, shape, index } of answers) {
            assert.equal(response.statusCode, 200, response.body.slice(0, 300));
            const { id, outputs } = outputsOf(
              response.rawPayload,
              response.headers['inference-header-content-length'] as string | undefined,
            );
            assert.equal(id, `r${index}`);
            const expected = new Map<string, number[]>();
            if (shape.outputs !== 'plus_one')
              expected.set(
                'twice',
                values.map((v) => 2 * v),
              );
            if (shape.outputs !== 'twice')
              expected.set(
                'plus_one',
                values.map((v) => v + 1),
              );
            assert.deepEqual(outputs, expected, `request ${index}`);
          }
          const after = await stats();
          const executions = after.execution_count - before.execution_count;
          // Batching happened: far fewer runs than requests (else this proves nothing).
          assert.ok(executions < REQUESTS / 4, `${executions} executions for ${REQUESTS} requests`);
          assert.equal(
            after.inference_count - before.inference_count,
            shapes.reduce((sum, s) => sum + s.rows, 0),
          );
        },
      ),
      // No shrinking: a counterexample of 10,000 requests would take hours to shrink; the seed replays it.
      { numRuns: RUNS, endOnFailure: true, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  });
});
