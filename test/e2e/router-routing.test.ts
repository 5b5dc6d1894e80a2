/**
 * Inference through the router on the real engine: /v2 with the job id as model name
 * (known answers from ds-550), load on demand, /v1 infer, the OpenAPI document, the
 * event stream and the Prometheus metrics.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';
import { DIGITS } from '../helpers/fixtures.js';

const records = DIGITS.slice(0, 16);

describe('routing inference through the router', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter();
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'r1', model: 'm-131', dataset: 'ds-550' });
    assert.equal(created.status, 201);
  });
  after(async () => {
    await t?.cleanup();
  });

  it('answers /v2 infer with the job id as model name, with the known labels', async () => {
    const response = await postJson(`${t.url}/v2/models/r1/infer`, {
      id: 'batch-1',
      inputs: [
        { name: 'pixels', shape: [16, 64], datatype: 'FP32', data: records.map((r) => r.inputs.pixels) },
      ],
      outputs: [{ name: 'label' }],
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.id, 'batch-1');
    assert.equal(response.body.model_name, 'r1');
    const correct = response.body.outputs[0].data.filter((p: number, i: number) => p === records[i]!.label);
    assert.ok(correct.length >= 15, `${correct.length}/16`);
  });

  it('passes the binary tensor extension through unchanged, both ways', async () => {
    const pixels = Buffer.from(Float32Array.from(records[0]!.inputs.pixels).buffer);
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'pixels',
            shape: [1, 64],
            datatype: 'FP32',
            parameters: { binary_data_size: pixels.length },
          },
        ],
        outputs: [{ name: 'label', parameters: { binary_data: true } }],
      }),
    );
    const response = await fetch(`${t.url}/v2/models/r1/infer`, {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
      body: Buffer.concat([header, pixels]),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const jsonLength = Number(response.headers.get('inference-header-content-length'));
    const body = Buffer.from(await response.arrayBuffer());
    const meta = JSON.parse(body.subarray(0, jsonLength).toString());
    assert.equal(meta.outputs[0].parameters.binary_data_size, 8);
    assert.equal(body.readBigInt64LE(jsonLength), BigInt(records[0]!.label));
  });

  it('serves model metadata and readiness under the job id', async () => {
    const meta = await getJson(`${t.url}/v2/models/r1`);
    assert.equal(meta.status, 200);
    assert.deepEqual(meta.body.inputs, [{ name: 'pixels', datatype: 'FP32', shape: [-1, 64] }]);
    assert.equal((await getJson(`${t.url}/v2/models/r1/ready`)).status, 200);
    assert.equal((await getJson(`${t.url}/v2/models/nobody/ready`)).status, 400);
  });

  it('passes the worker’s 400 for a bad tensor through, and 404 for an unknown job', async () => {
    const bad = await postJson(`${t.url}/v2/models/r1/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 63], datatype: 'FP32', data: Array(63).fill(0) }],
    });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /expects \[-1,64\]/);
    const unknown = await postJson(`${t.url}/v2/models/nobody/infer`, { inputs: [] });
    assert.equal(unknown.status, 404);
    assert.match(unknown.body.error, /job nobody not found/, 'the protocol’s error form on /v2');
  });

  it('loads an unloaded server on demand and records it', async () => {
    assert.equal((await postJson(`${t.url}/v1/jobs/r1/unload`, {})).body.server.state, 'unloaded');
    const response = await postJson(`${t.url}/v1/jobs/r1/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: records[0]!.inputs.pixels }],
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(
      response.body.outputs.find((o: { name: string }) => o.name === 'label').data[0],
      records[0]!.label,
    );
    const ops = (await getJson(`${t.url}/v1/operations?job_id=r1&type=DEPLOY_LOAD`)).body.operations;
    assert.equal(ops[0].reason, 'on_demand');
    assert.equal((await getJson(`${t.url}/v1/jobs/r1`)).body.state, 'ready');
  });

  it('streams state changes on /v1/events', async () => {
    const controller = new AbortController();
    const response = await fetch(`${t.url}/v1/events`, { signal: controller.signal });
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const reader = response.body!.getReader();
    const seen: string[] = [];
    const reading = (async () => {
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += Buffer.from(value).toString();
        for (const match of text.matchAll(/"state":"(\w+)"/g)) seen.push(match[1]!);
        if (seen.includes('unloaded')) return;
      }
    })();
    await postJson(`${t.url}/v1/jobs/r1/unload`, {});
    await reading;
    controller.abort();
    assert.ok(seen.includes('unloading') && seen.includes('unloaded'), seen.join(','));
  });

  it('exposes Prometheus metrics and the OpenAPI document', async () => {
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /modeldock_operations_total\{type="DEPLOY_CREATE",outcome="succeeded"\} 1/);
    assert.match(metrics, /modeldock_inference_requests_total\{job="r1",status="2xx"\} \d+/);
    assert.match(
      metrics,
      /modeldock_operation_step_duration_seconds_count\{type="DEPLOY_CREATE",step="start"\} 1/,
    );
    assert.match(metrics, /modeldock_servers\{state="unloaded"\} 1/);
    const openapi = await getJson(`${t.url}/v1/openapi.json`);
    assert.equal(openapi.status, 200);
    assert.equal(openapi.body.openapi, '3.0.3');
    for (const route of [
      '/inference_router/',
      '/v1/jobs',
      '/v1/jobs/{job_id}/load',
      '/v1/operations',
      '/v2/models/{job}/infer',
    ]) {
      assert.ok(openapi.body.paths[route], `${route} documented`);
    }
  });
});
