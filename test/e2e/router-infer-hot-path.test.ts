/**
 * The inference hot path (src/api/infer-fast-path.ts) against a real router socket and a
 * real worker: what it takes is answered as the worker answers it, what it declines
 * (large or chunked bodies, encoded names) still works through that route, every request
 * is counted, and a killed worker never leaves a request hanging and heals.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Pool, type Dispatcher } from 'undici';
import { SMALL_BODY_BYTES } from '../../src/api/infer-fast-path.js';
import { DIGITS } from '../helpers/fixtures.js';
import { getJson, postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';

function inferBody(records: typeof DIGITS): string {
  return JSON.stringify({
    inputs: [
      {
        name: 'pixels',
        shape: [records.length, 64],
        datatype: 'FP32',
        data: records.map((r) => r.inputs.pixels),
      },
    ],
    outputs: [{ name: 'label' }],
  });
}

async function inferredCount(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const match = /modeldock_inference_requests_total\{job="h1",status="2xx"\} (\d+)/.exec(metrics);
  return match ? Number(match[1]) : 0;
}

describe('inference hot path', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_RESTART_BACKOFF_MS: '50' } });
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'h1', model: 'm-131', dataset: 'ds-550' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });
  after(async () => {
    await t?.cleanup();
  });
  // Whatever the path a request took, it let its route go once it was answered.
  afterEach(async () => {
    const route = t.router.lifecycle.tryAcquireRoute('h1');
    if (!route) return;
    route.release();
    assert.equal(await route.drain(10_000), 0, 'no request is left counted on the route');
    assert.equal(route.inFlight, 0, 'no request let the route go twice');
  });

  it('answers many requests on one keep-alive connection as the worker does and counts each one', async () => {
    const before = await inferredCount(t.url);
    const endpoint: string = (await getJson(`${t.url}/v1/jobs/h1`)).body.server.endpoint;
    const routed = new Pool(t.url, { connections: 1 });
    // The router's own pool to the worker: it carries the worker's secret.
    const direct = t.router.workers.pool(endpoint);
    const send = async (pool: Dispatcher, body: string) => {
      const response = await pool.request({
        method: 'POST',
        path: '/v2/models/h1/infer',
        headers: { 'content-type': 'application/json' },
        body,
      });
      return {
        status: response.statusCode,
        type: response.headers['content-type'],
        text: await response.body.text(),
      };
    };
    try {
      for (let i = 0; i < 50; i++) {
        const body = inferBody([DIGITS[i]!]);
        const [viaRouter, fromWorker] = [await send(routed, body), await send(direct, body)];
        assert.equal(viaRouter.status, 200, viaRouter.text);
        assert.deepEqual(viaRouter, fromWorker, `digit ${i}: the router passes the answer on unchanged`);
      }
    } finally {
      await routed.close();
    }
    assert.equal(await inferredCount(t.url), before + 50);
  });

  it('gives a body too large to buffer the same answers through the streaming route', async () => {
    const many = [...DIGITS, ...DIGITS];
    const large = inferBody(many);
    assert.ok(Buffer.byteLength(large) > SMALL_BODY_BYTES, 'the body must exceed the hot path limit');
    const response = await postJson(`${t.url}/v2/models/h1/infer`, JSON.parse(large));
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const labels: number[] = response.body.outputs[0].data;
    assert.equal(labels.length, many.length);
    for (const i of [0, 17, many.length - 1]) {
      const single = await postJson(`${t.url}/v2/models/h1/infer`, JSON.parse(inferBody([many[i]!])));
      assert.equal(single.body.outputs[0].data[0], labels[i], `digit ${i} alone and in the batch`);
    }
  });

  it('serves chunked bodies and percent-encoded job names through the Fastify route', async () => {
    const record = DIGITS[3]!;
    const chunked = await fetch(`${t.url}/v2/models/h1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // A stream body has no Content-Length: it is sent chunked.
      body: new Blob([inferBody([record])]).stream(),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 200);
    assert.equal(
      ((await chunked.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data[0],
      record.label,
    );
    const encoded = await postJson(`${t.url}/v2/models/h%31/infer`, JSON.parse(inferBody([record])));
    assert.equal(encoded.status, 200, JSON.stringify(encoded.body));
    assert.equal(encoded.body.model_name, 'h1');
  });

  it('never hangs on a killed worker, and routes again once the reconciler restarted it', async () => {
    const job = (await getJson(`${t.url}/v1/jobs/h1`)).body;
    const serverId: string = job.server.server_id;
    await t.docker.getContainer(job.server.container_name).kill();
    const during = await postJson(`${t.url}/v2/models/h1/infer`, JSON.parse(inferBody([DIGITS[0]!])));
    // Three honest outcomes, by who is first: the request reached the dead worker (502),
    // the server was already marked failed (409), or it waited for the restart (200).
    if (during.status !== 200) {
      assert.ok([502, 409].includes(during.status), `status ${during.status}`);
      assert.equal(typeof during.body.error, 'string', JSON.stringify(during.body));
    }
    await waitForServer(t.router, serverId, (s) => s.state === 'ready' && s.restarts >= 1, 30_000);
    const healed = await postJson(`${t.url}/v2/models/h1/infer`, JSON.parse(inferBody([DIGITS[0]!])));
    assert.equal(healed.status, 200, JSON.stringify(healed.body));
    assert.equal(healed.body.model_name, 'h1');
  });
});
