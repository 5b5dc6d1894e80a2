/**
 * The worker's Triton-compatible behaviour in-process, on m-131: bodies without a
 * Content-Type (what tritonclient sends), the model configuration and statistics
 * extensions, and the extension list. tritonclient itself drives these against a real
 * container in test/e2e/oip-tritonclient.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildWorkerApp, type WorkerApp } from '../../src/worker/app.js';
import { DIGITS } from '../helpers/fixtures.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';

describe('worker: protocol extensions', () => {
  let worker: WorkerApp;
  const digit = DIGITS[0]!;
  before(async () => {
    worker = await buildWorkerApp({ modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR });
    const loaded = await worker.app.inject({
      method: 'POST',
      url: '/v2/repository/models/j1/load',
      payload: { parameters: { model_id: 'm-131' } },
    });
    assert.equal(loaded.statusCode, 200, loaded.body);
  });
  after(async () => {
    await worker?.app.close();
  });

  // inject() adds no Content-Type for a string or Buffer payload unless told to.
  const raw = (payload: string | Buffer, headers: Record<string, string> = {}) =>
    worker.app.inject({ method: 'POST', url: '/v2/models/j1/infer', payload, headers });

  it('reads a body without Content-Type as JSON, or as binary tensors with Inference-Header-Content-Length', async () => {
    const json = await raw(
      JSON.stringify({
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: digit.inputs.pixels }],
      }),
    );
    assert.equal(json.raw.req.headers['content-type'], undefined, 'no Content-Type was sent');
    assert.equal(json.statusCode, 200, json.body);
    assert.equal(json.json().outputs.find((o: any) => o.name === 'label').data[0], digit.label);

    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: 256 } }],
        outputs: [{ name: 'label' }],
      }),
    );
    const binary = await raw(
      Buffer.concat([header, Buffer.from(Float32Array.from(digit.inputs.pixels).buffer)]),
      {
        'inference-header-content-length': String(header.length),
      },
    );
    assert.equal(binary.statusCode, 200, binary.body);
    assert.equal(binary.json().outputs[0].data[0], digit.label);

    const bad = await raw('{"inputs": [', {});
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error, /not valid JSON/);
  });

  it('describes the model as Triton’s model configuration', async () => {
    for (const url of ['/v2/models/j1/config', '/v2/models/j1/versions/1/config']) {
      const config = (await worker.app.inject({ method: 'GET', url })).json();
      assert.deepEqual(
        {
          name: config.name,
          platform: config.platform,
          backend: config.backend,
          max_batch_size: config.max_batch_size,
        },
        // A dynamic first dimension: batchable, so Triton's dims leave it out.
        { name: 'j1', platform: 'onnxruntime_onnx', backend: 'onnxruntime', max_batch_size: 64 },
      );
      assert.deepEqual(config.input, [
        { name: 'pixels', data_type: 'TYPE_FP32', dims: [64], format: 'FORMAT_NONE' },
      ]);
      assert.deepEqual(config.output, [
        { name: 'label', data_type: 'TYPE_INT64', dims: [] },
        { name: 'probabilities', data_type: 'TYPE_FP32', dims: [10] },
      ]);
      assert.equal(config.dynamic_batching.max_queue_delay_microseconds, 0);
    }
    const missing = await worker.app.inject({ method: 'GET', url: '/v2/models/nope/config' });
    assert.equal(missing.statusCode, 404);
    assert.equal(typeof missing.json().error, 'string');
  });

  it('counts successes and failures with their durations in ns, per name', async () => {
    const read = async () => (await worker.app.inject({ method: 'GET', url: '/v2/models/j1/stats' })).json();
    const before = (await read()).model_stats[0];
    const ok = { inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: digit.inputs.pixels }] };
    for (let i = 0; i < 3; i++) assert.equal((await raw(JSON.stringify(ok))).statusCode, 200);
    const wrong = { inputs: [{ name: 'pixels', shape: [1, 63], datatype: 'FP32', data: Array(63).fill(0) }] };
    assert.equal((await raw(JSON.stringify(wrong))).statusCode, 400);
    assert.equal((await raw(JSON.stringify(ok), {})).statusCode, 200);
    const after = (await read()).model_stats[0];
    const s = after.inference_stats;
    assert.equal(after.name, 'j1');
    assert.equal(after.version, '1');
    assert.equal(s.success.count - before.inference_stats.success.count, 4);
    assert.equal(s.fail.count - before.inference_stats.fail.count, 1);
    assert.equal(after.execution_count - before.execution_count, 4);
    for (const phase of ['queue', 'compute_input', 'compute_infer', 'compute_output']) {
      assert.equal(s[phase].count, s.success.count, phase);
      assert.ok(Number.isInteger(s[phase].ns) && s[phase].ns > before.inference_stats[phase].ns, phase);
    }
    assert.ok(after.last_inference >= before.last_inference && after.last_inference > 0);
    const all = (await worker.app.inject({ method: 'GET', url: '/v2/models/stats' })).json();
    assert.deepEqual(
      all.model_stats.map((m: any) => m.name),
      ['j1'],
    );
    assert.equal((await worker.app.inject({ method: 'GET', url: '/v2/models/nope/stats' })).statusCode, 404);
  });

  it('lists exactly the extensions it serves', async () => {
    const metadata = (await worker.app.inject({ method: 'GET', url: '/v2' })).json();
    assert.deepEqual([...metadata.extensions].sort(), [
      'batch',
      'binary_tensor_data',
      'model_configuration',
      'model_repository',
      'statistics',
    ]);
  });
});
