/**
 * The worker in-process (no container) on the real m-131 model and ds-550 data: the
 * Open Inference Protocol, load/unload, batch inference and every bad input we know of.
 */
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWorkerApp, type WorkerApp } from '../../src/worker/app.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { DIGITS } from '../helpers/fixtures.js';

const records = DIGITS;
const manifest = JSON.parse(readFileSync(path.join(MODELS_DIR, 'm-131/model.json'), 'utf8'));

describe('worker: m-131 over the Open Inference Protocol', () => {
  let worker: WorkerApp;
  let modelsDir: string;
  before(async () => {
    // A model store with m-131, a model without model.json, and a corrupt one.
    modelsDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-models-'));
    for (const id of ['m-131', 'bare']) await mkdir(path.join(modelsDir, id));
    await copyFile(path.join(MODELS_DIR, 'm-131/model.onnx'), path.join(modelsDir, 'm-131/model.onnx'));
    await copyFile(path.join(MODELS_DIR, 'm-131/model.json'), path.join(modelsDir, 'm-131/model.json'));
    await copyFile(path.join(MODELS_DIR, 'm-131/model.onnx'), path.join(modelsDir, 'bare/model.onnx'));
    await mkdir(path.join(modelsDir, 'corrupt'));
    await writeFile(path.join(modelsDir, 'corrupt/model.onnx'), 'this is not a protobuf');
    worker = await buildWorkerApp({ modelsDir, datasetsDir: DATASETS_DIR });
  });
  after(async () => {
    await worker?.app.close();
    await rm(modelsDir, { recursive: true, force: true });
  });

  const post = (url: string, body?: unknown) =>
    worker.app.inject({ method: 'POST', url, ...(body === undefined ? {} : { payload: body as object }) });

  it('is live and ready, and lists the store', async () => {
    assert.equal((await worker.app.inject('/v2/health/live')).statusCode, 200);
    assert.equal((await worker.app.inject('/v2/health/ready')).statusCode, 200);
    const index = (await post('/v2/repository/index')).json();
    assert.deepEqual(
      index.map((m: { name: string }) => m.name),
      ['bare', 'corrupt', 'm-131'],
    );
  });

  it('loads m-131 under a job name, idempotently', async () => {
    const first = await post('/v2/repository/models/a1/load', { parameters: { model_id: 'm-131' } });
    assert.equal(first.statusCode, 200, first.body);
    assert.equal(first.json().state, 'READY');
    const again = await post('/v2/repository/models/a1/load', { parameters: { model_id: 'm-131' } });
    assert.equal(again.json().load_ms, 0, 'already loaded: nothing to do');
    assert.equal((await worker.app.inject('/v2/models/a1/ready')).statusCode, 200);
  });

  it('answers under the optional /versions/1 segment, and 404 for another version', async () => {
    const body = {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: records[0]!.inputs.pixels }],
      outputs: [{ name: 'label' }],
    };
    const versioned = await post('/v2/models/a1/versions/1/infer', body);
    assert.equal(versioned.statusCode, 200, versioned.body);
    assert.deepEqual(versioned.json().outputs[0].data, [records[0]!.label]);
    assert.equal(versioned.json().model_version, '1');
    assert.equal((await worker.app.inject('/v2/models/a1/versions/1')).json().name, 'a1');
    assert.equal((await worker.app.inject('/v2/models/a1/versions/1/ready')).statusCode, 200);
    const other = await post('/v2/models/a1/versions/2/infer', body);
    assert.equal(other.statusCode, 404);
    assert.match(other.json().error, /no version 2/);
  });

  it('describes itself, and lists only ready models when asked', async () => {
    const server = (await worker.app.inject('/v2')).json();
    assert.equal(server.name, 'modeldock-worker');
    assert.match(server.version, /^\d+\.\d+\.\d+/);
    assert.ok(server.extensions.includes('model_repository'));
    const ready = (await post('/v2/repository/index', { ready: true })).json();
    // Triton's fields, the store model it serves, and what the load measured (docs/worker.md#memory-per-model).
    assert.equal(typeof ready[0]?.memory_bytes, 'number');
    assert.deepEqual(ready, [
      {
        name: 'a1',
        version: '1',
        state: 'READY',
        reason: '',
        model_id: 'm-131',
        memory_bytes: ready[0].memory_bytes,
      },
    ]);
  });

  it('keeps the dataset a model was loaded for and reports it in the index until it is unloaded', async () => {
    const bad = await post('/v2/repository/models/a2/load', {
      parameters: { model_id: 'm-131', dataset: '../etc' },
    });
    assert.equal(bad.statusCode, 400, bad.body);
    const loaded = await post('/v2/repository/models/a2/load', {
      parameters: { model_id: 'm-131', dataset: 'ds-550' },
    });
    assert.equal(loaded.statusCode, 200, loaded.body);
    const entry = () =>
      post('/v2/repository/index', { ready: true }).then((r) => r.json().find((e: any) => e.name === 'a2'));
    assert.equal((await entry())?.dataset, 'ds-550');
    assert.equal((await entry())?.model_id, 'm-131');
    assert.equal((await post('/v2/repository/models/a2/unload', {})).statusCode, 200);
    assert.equal(await entry(), undefined);
  });

  it('reads inputs and outputs from the graph', async () => {
    const meta = (await worker.app.inject('/v2/models/a1')).json();
    assert.deepEqual(meta.inputs, [{ name: 'pixels', datatype: 'FP32', shape: [-1, 64] }]);
    assert.deepEqual(meta.outputs, [
      { name: 'label', datatype: 'INT64', shape: [-1] },
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 10] },
    ]);
    assert.equal(meta.platform, 'onnxruntime_onnx');
  });

  it('classifies known digits correctly (flat and nested data)', async () => {
    const sample = records.slice(0, 8);
    const response = await post('/v2/models/a1/infer', {
      id: 'req-1',
      inputs: [
        { name: 'pixels', shape: [8, 64], datatype: 'FP32', data: sample.map((r) => r.inputs.pixels) },
      ],
      outputs: [{ name: 'label' }],
    });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.id, 'req-1');
    assert.equal(body.model_name, 'a1');
    assert.deepEqual(body.outputs[0].shape, [8]);
    const correct = body.outputs[0].data.filter((p: number, i: number) => p === sample[i]!.label).length;
    assert.ok(correct >= 7, `${correct}/8 correct`);
    const probabilities = (
      await post('/v2/models/a1/infer', {
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: sample[0]!.inputs.pixels }],
      })
    ).json().outputs[1];
    assert.equal(probabilities.data.length, 10);
    assert.ok(Math.abs(probabilities.data.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-4);
  });

  it('runs over the whole of ds-550 with the accuracy model.json states (527/550)', async () => {
    const response = await post('/v2/models/a1/batch', { dataset: 'ds-550' });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json();
    assert.equal(body.count, 550);
    assert.equal(body.predictions.length, 550);
    assert.equal(body.correct, 527);
    assert.equal(body.accuracy, 527 / 550);
    // The figure model.json and the docs state (0.9582) is this one, rounded.
    assert.equal(Math.round(body.accuracy * 10000) / 10000, manifest.accuracy['ds-550']);
    assert.deepEqual(
      body.predictions.slice(0, 10),
      records.slice(0, 10).map((r) => r.label),
      'the first ten digits are all recognised',
    );
  });

  it('a model without model.json is served from its graph alone', async () => {
    assert.equal((await post('/v2/repository/models/bare/load')).statusCode, 200);
    const batch = (await post('/v2/models/bare/batch', { dataset: 'ds-550' })).json();
    assert.equal(batch.prediction_output, 'label');
    assert.equal(batch.correct, 527);
  });

  const bad: [string, unknown, RegExp][] = [
    [
      'a wrong datatype',
      { inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'INT32', data: Array(64).fill(0) }] },
      /datatype INT32.*FP32/,
    ],
    [
      'a wrong rank',
      { inputs: [{ name: 'pixels', shape: [64], datatype: 'FP32', data: Array(64).fill(0) }] },
      /rank 2/,
    ],
    [
      'a wrong fixed dimension',
      { inputs: [{ name: 'pixels', shape: [1, 63], datatype: 'FP32', data: Array(63).fill(0) }] },
      /expects \[-1,64\]/,
    ],
    [
      'too few elements',
      { inputs: [{ name: 'pixels', shape: [2, 64], datatype: 'FP32', data: Array(64).fill(0) }] },
      /64 elements.*needs 128/,
    ],
    [
      'a non-number element',
      { inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: [...Array(63).fill(0), 'x'] }] },
      /finite number/,
    ],
    [
      'an unknown input',
      { inputs: [{ name: 'image', shape: [1, 64], datatype: 'FP32', data: Array(64).fill(0) }] },
      /no input "image"/,
    ],
    [
      'an unknown output',
      {
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: Array(64).fill(0) }],
        outputs: [{ name: 'nope' }],
      },
      /no output "nope"/,
    ],
    ['no inputs', { inputs: [] }, /non-empty "inputs"/],
    [
      'an input without datatype, shape and data',
      { inputs: [{ name: 'pixels' }] },
      /lacks "datatype", "shape", "data"/,
    ],
    [
      'outputs that are not a list',
      {
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: Array(64).fill(0) }],
        outputs: 'label',
      },
      /"outputs" must be a list/,
    ],
    ['a body that is a list', [], /non-empty "inputs"/],
  ];
  for (const [what, body, message] of bad) {
    it(`answers 400 for ${what}`, async () => {
      const response = await post('/v2/models/a1/infer', body);
      assert.equal(response.statusCode, 400, response.body);
      assert.match(response.json().error, message);
    });
  }

  it('refuses path tricks, unknown and corrupt models with clear errors and keeps nothing', async () => {
    const trick = await post('/v2/repository/models/x/load', { parameters: { model_id: '../m-131' } });
    assert.equal(trick.statusCode, 400);
    assert.equal(
      (await post('/v2/repository/models/x/load', { parameters: { model_id: 'm-404' } })).statusCode,
      404,
    );
    const corrupt = await post('/v2/repository/models/c/load', { parameters: { model_id: 'corrupt' } });
    assert.equal(corrupt.statusCode, 400);
    assert.match(corrupt.json().error, /cannot be loaded/);
    assert.equal((await worker.app.inject('/v2/models/c/ready')).statusCode, 400);
    const entry = (await post('/v2/repository/index')).json().find((m: { name: string }) => m.name === 'c');
    assert.equal(entry.state, 'UNAVAILABLE');
    assert.match(entry.reason, /cannot be loaded/);
    assert.equal((await post('/v2/models/a1/batch', { dataset: '../../etc' })).statusCode, 400);
    assert.equal((await post('/v2/models/a1/batch', { dataset: 'ds-404' })).statusCode, 404);
  });

  it('unloads: the model is gone and inference says so', async () => {
    const response = await post('/v2/repository/models/a1/unload');
    assert.equal(response.statusCode, 200);
    assert.equal(response.json().unloaded, true);
    assert.equal((await worker.app.inject('/v2/models/a1/ready')).statusCode, 400);
    const infer = await post('/v2/models/a1/infer', {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: Array(64).fill(0) }],
    });
    assert.equal(infer.statusCode, 404);
    assert.match(infer.json().error, /not loaded/);
    assert.equal((await post('/v2/repository/models/a1/unload')).json().unloaded, false, 'idempotent');
  });
});
