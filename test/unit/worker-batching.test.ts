/**
 * Dynamic batching in the worker, in-process on real ONNX Runtime sessions: what
 * model.json and the graph put in force (and the configuration extension reports),
 * concurrent requests running as batches that each get their own rows, and isolation —
 * a request failing validation or the model fails alone, other shapes or outputs are
 * never merged, a cancelled request leaves the queue, a full queue refuses.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWorkerApp, type WorkerApp } from '../../src/worker/app.js';
import { TooManyRequestsError } from '../../src/errors.js';
import { CancelledError } from '../../src/worker/batcher.js';
import { DIGITS } from '../helpers/fixtures.js';
import { TEST_MODELS_DIR, ensureDoublerModel, ensureGatherModel } from '../helpers/models.js';
import { MODELS_DIR } from '../helpers/paths.js';

describe('worker: dynamic batching', () => {
  let worker: WorkerApp;
  let root: string;
  /** model id → [model.onnx source, model.json] */
  const store: Record<string, [string, object | undefined]> = {};

  before(async () => {
    const doubler = path.join(TEST_MODELS_DIR, await ensureDoublerModel(), 'model.onnx');
    const gather = path.join(TEST_MODELS_DIR, await ensureGatherModel(), 'model.onnx');
    const digits = path.join(MODELS_DIR, 'm-131/model.onnx');
    Object.assign(store, {
      doubler: [doubler, undefined],
      gather: [gather, undefined],
      'digits-default': [digits, undefined],
      'digits-off': [digits, { dynamic_batching: false }],
      'digits-tuned': [
        digits,
        {
          max_batch_size: 16,
          dynamic_batching: {
            max_queue_delay_microseconds: 500,
            preferred_batch_size: [8, 4],
            default_queue_policy: { max_queue_size: 3 },
            adaptive_delay: false,
          },
        },
      ],
      'bad-delay': [digits, { dynamic_batching: { max_queue_delay_microseconds: -1 } }],
      'bad-field': [digits, { dynamic_batching: { max_queue_delay: 100 } }],
      'bad-preferred': [digits, { max_batch_size: 4, dynamic_batching: { preferred_batch_size: [8] } }],
      'small-queue': [
        digits,
        {
          max_batch_size: 4,
          dynamic_batching: {
            max_queue_delay_microseconds: 1_000_000,
            adaptive_delay: false,
            default_queue_policy: { max_queue_size: 1 },
          },
        },
      ],
    });
    root = await mkdtemp(path.join(os.tmpdir(), 'modeldock-batching-'));
    for (const [id, [onnx, json]] of Object.entries(store)) {
      await mkdir(path.join(root, id));
      await copyFile(onnx, path.join(root, id, 'model.onnx'));
      if (json) await writeFile(path.join(root, id, 'model.json'), JSON.stringify(json));
    }
    worker = await buildWorkerApp({ modelsDir: root, datasetsDir: root });
    for (const id of ['doubler', 'gather', 'digits-default', 'digits-off', 'digits-tuned', 'small-queue']) {
      const loaded = await worker.app.inject({ method: 'POST', url: `/v2/repository/models/${id}/load` });
      assert.equal(loaded.statusCode, 200, loaded.body);
    }
  });
  after(async () => {
    await worker?.app.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const get = async (url: string) => (await worker.app.inject({ method: 'GET', url })).json();
  const stats = async (name: string) => (await get(`/v2/models/${name}/stats`)).model_stats[0];
  const infer = (name: string, body: object) =>
    worker.app.inject({ method: 'POST', url: `/v2/models/${name}/infer`, payload: body });
  const doubled = (values: number[], n = values.length) => ({
    inputs: [{ name: 'x', datatype: 'FP32', shape: [values.length / n, n], data: values }],
  });

  it('reports the batching in force: the graph’s defaults, model.json’s fields, or off', async () => {
    const defaults = await get('/v2/models/digits-default/config');
    assert.equal(defaults.max_batch_size, 64);
    assert.deepEqual(defaults.input[0].dims, [64], 'dims without the batch dimension, as Triton');
    assert.deepEqual(
      defaults.output.map((o: any) => o.dims),
      [[], [10]],
    );
    assert.deepEqual(defaults.dynamic_batching, {
      preferred_batch_size: [],
      max_queue_delay_microseconds: 0,
      preserve_ordering: false,
      default_queue_policy: {
        timeout_action: 'REJECT',
        default_timeout_microseconds: 0,
        allow_timeout_override: false,
        max_queue_size: 0,
      },
    });
    assert.equal(defaults.parameters.dynamic_batching_delay.string_value, 'adaptive');

    const off = await get('/v2/models/digits-off/config');
    assert.equal(off.max_batch_size, 64, 'the model still takes batches; the worker does not form them');
    assert.equal(off.dynamic_batching, undefined);
    assert.equal(off.parameters.dynamic_batching_delay, undefined);

    const tuned = await get('/v2/models/digits-tuned/config');
    assert.equal(tuned.max_batch_size, 16);
    assert.deepEqual(tuned.dynamic_batching.preferred_batch_size, [4, 8]);
    assert.equal(tuned.dynamic_batching.max_queue_delay_microseconds, 500);
    assert.equal(tuned.dynamic_batching.default_queue_policy.max_queue_size, 3);
    assert.equal(tuned.parameters.dynamic_batching_delay.string_value, 'fixed');
  });

  it('refuses a model.json whose batching makes no sense, naming the field, and loads nothing', async () => {
    for (const [id, field] of [
      ['bad-delay', /max_queue_delay_microseconds/],
      ['bad-field', /unknown field\(s\) "max_queue_delay"/],
      ['bad-preferred', /preferred_batch_size/],
    ] as const) {
      const loaded = await worker.app.inject({ method: 'POST', url: `/v2/repository/models/${id}/load` });
      assert.equal(loaded.statusCode, 400, loaded.body);
      assert.match(loaded.json().error, field);
      assert.equal(
        (await worker.app.inject({ method: 'GET', url: `/v2/models/${id}/ready` })).statusCode,
        400,
      );
    }
  });

  it('runs concurrent requests as batches, each answered with exactly its own rows, counted as Triton counts', async () => {
    const before = await stats('doubler');
    const sizes = Array.from({ length: 60 }, (_, i) => 1 + (i % 3));
    const answers = await Promise.all(
      sizes.map((rows, i) => {
        const values = Array.from({ length: rows * 2 }, (_, j) => i * 100 + j);
        return infer('doubler', doubled(values, 2)).then((r) => ({ r, values, rows }));
      }),
    );
    for (const { r, values, rows } of answers) {
      assert.equal(r.statusCode, 200, r.body);
      const [twice, plusOne] = r.json().outputs;
      assert.deepEqual(twice.shape, [rows, 2]);
      assert.deepEqual(
        twice.data,
        values.map((v) => 2 * v),
      );
      assert.deepEqual(
        plusOne.data,
        values.map((v) => v + 1),
      );
    }
    const after = await stats('doubler');
    const requests = after.inference_stats.success.count - before.inference_stats.success.count;
    const executions = after.execution_count - before.execution_count;
    assert.equal(requests, 60);
    assert.equal(
      after.inference_count - before.inference_count,
      sizes.reduce((a, b) => a + b, 0),
      'inference_count counts rows',
    );
    assert.ok(executions < requests / 4, `${executions} executions for ${requests} requests`);
    assert.ok(
      after.batch_stats.some((b: any) => b.batch_size > 3),
      'some batch merged several requests',
    );
    assert.equal(
      after.batch_stats.reduce((sum: number, b: any) => sum + b.compute_infer.count, 0),
      after.execution_count,
      'batch_stats count executions',
    );
  });

  it('never merges other widths, requested outputs or parameters, and fails a bad request alone', async () => {
    const before = await stats('doubler');
    const bodies = [
      doubled([1, 2], 2),
      doubled([3, 4, 5], 3),
      { ...doubled([6, 7], 2), outputs: [{ name: 'plus_one' }] },
      { ...doubled([8, 9], 2), parameters: { custom: 1 } },
      { inputs: [{ name: 'x', datatype: 'FP64', shape: [1, 2], data: [1, 2] }] },
      doubled([10, 11], 2),
    ];
    const answers = await Promise.all(bodies.map((body) => infer('doubler', body)));
    assert.deepEqual(
      answers.map((a) => a.statusCode),
      [200, 200, 200, 200, 400, 200],
    );
    assert.match(answers[4]!.json().error, /datatype FP64; the model expects FP32/);
    assert.deepEqual(answers[1]!.json().outputs[0].data, [6, 8, 10]);
    assert.deepEqual(
      answers[2]!.json().outputs.map((o: any) => [o.name, o.data]),
      [['plus_one', [7, 8]]],
    );
    assert.deepEqual(answers[3]!.json().outputs[0].data, [16, 18]);
    assert.deepEqual(answers[5]!.json().outputs[0].data, [20, 22]);
    const after = await stats('doubler');
    // The first runs alone; of the rest only [1, 2]'s and [10, 11]'s kind could merge: ≥ 4 runs.
    assert.ok(after.execution_count - before.execution_count >= 4);
    assert.equal(after.inference_stats.fail.count - before.inference_stats.fail.count, 1);
  });

  it('batches a request asking for binary outputs with JSON ones: that parameter only encodes the answer', async () => {
    const before = await stats('doubler');
    const busy = worker.infer('doubler', doubled([1, 2], 2));
    const json = worker.infer('doubler', doubled([3, 4], 2));
    const binary = worker.infer('doubler', {
      ...doubled([5, 6], 2),
      parameters: { binary_data_output: true },
    });
    const [, asJson, asBytes] = await Promise.all([busy, json, binary]);
    assert.deepEqual((asJson.response.outputs[0] as any).data, [6, 8]);
    assert.equal(asBytes.binary.length, 2, 'both outputs as bytes');
    assert.deepEqual([...new Float32Array(new Uint8Array(asBytes.binary[0]!).buffer)], [10, 12]);
    const after = await stats('doubler');
    assert.equal(after.execution_count - before.execution_count, 2, 'the two queued requests ran as one');
  });

  it('keeps a model error to the request that caused it, though it was batched with others', async () => {
    const indices = [1, 2, 99, 3, 4, 5, 6];
    const answers = await Promise.all(
      indices.map((index) =>
        infer('gather', { inputs: [{ name: 'index', datatype: 'INT64', shape: [1], data: [index] }] }),
      ),
    );
    answers.forEach((answer, i) => {
      if (indices[i] === 99) {
        assert.equal(answer.statusCode, 400, answer.body);
        assert.match(answer.json().error, /cannot run on these inputs/);
      } else {
        assert.equal(answer.statusCode, 200, answer.body);
        assert.deepEqual(answer.json().outputs[0].data, [indices[i]! * 1.5]);
      }
    });
  });

  it('takes a cancelled request out of the queue: it never runs', async () => {
    const before = await stats('digits-default');
    const busy = worker.infer('digits-default', {
      inputs: [{ name: 'pixels', datatype: 'FP32', shape: [2000, 64], data: new Array(2000 * 64).fill(1) }],
    });
    const leaving = new AbortController();
    const cancelled = worker.infer(
      'digits-default',
      { inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: DIGITS[0]!.inputs.pixels }] },
      undefined,
      leaving.signal,
    );
    leaving.abort();
    await assert.rejects(cancelled, CancelledError);
    await busy;
    const after = await stats('digits-default');
    assert.equal(after.inference_count - before.inference_count, 2000, 'only the busy request ran');
    assert.equal(after.inference_stats.fail.count - before.inference_stats.fail.count, 1);
  });

  it('refuses a request with 503 and Retry-After when the model’s queue is full', async () => {
    const one = {
      inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: DIGITS[0]!.inputs.pixels }],
    };
    // A fixed wait of a second for company holds the first request in the queue (max_queue_size 1).
    const waiting = worker.infer('small-queue', one);
    await assert.rejects(worker.infer('small-queue', one), TooManyRequestsError);
    const refused = await infer('small-queue', one);
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(refused.headers['retry-after'], '1');
    assert.match(refused.json().error, /queue is full/);
    await waiting;
    // A full batch (max_batch_size 4) does not wait.
    const four = {
      inputs: [{ name: 'pixels', datatype: 'FP32', shape: [4, 64], data: new Array(4 * 64).fill(1) }],
    };
    assert.equal((await infer('small-queue', four)).statusCode, 200, 'room again once it drained');
  });

  it('runs each request alone with dynamic_batching false, as before batching', async () => {
    const before = await stats('digits-off');
    const body = {
      inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: DIGITS[0]!.inputs.pixels }],
    };
    const answers = await Promise.all(Array.from({ length: 12 }, () => infer('digits-off', body)));
    for (const answer of answers) {
      assert.equal(answer.statusCode, 200);
      assert.equal(answer.json().outputs[0].data[0], DIGITS[0]!.label);
    }
    const after = await stats('digits-off');
    assert.equal(after.execution_count - before.execution_count, 12);
  });
});
