/**
 * The inference hot path (src/api/infer-fast-path.ts) against a real router socket and a
 * real worker: what it takes is answered as the worker answers it, what it declines
 * (large or chunked bodies, encoded names) still works through that route, every request
 * is counted, and a killed worker never leaves a request hanging and heals.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import { Pool, type Dispatcher } from 'undici';
import { SMALL_BODY_BYTES } from '../../src/api/infer-fast-path.js';
import type { RouteEntry } from '../../src/lifecycle/route-table.js';
import { DIGITS } from '../helpers/fixtures.js';
import { ensureBigModel, TEST_MODELS_DIR } from '../helpers/models.js';
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

  it('forbids framing and sniffing on every answer, whichever path answered it', async () => {
    const body = inferBody([DIGITS[0]!]);
    const json = { 'content-type': 'application/json' };
    const answers: [string, Response | { status: number; headers: Headers }][] = [
      ['hot path', await fetch(`${t.url}/v2/models/h1/infer`, { method: 'POST', body, headers: json })],
      [
        'Fastify route (chunked)',
        await fetch(`${t.url}/v2/models/h1/infer`, {
          method: 'POST',
          body: new Blob([body]).stream(),
          headers: json,
          duplex: 'half',
        } as RequestInit),
      ],
      [
        'original endpoint, bad input',
        await fetch(`${t.url}/inference_router/`, {
          method: 'POST',
          body: '{}',
          headers: { 'content-type': 'application/json' },
        }),
      ],
      ['unknown URL', await fetch(`${t.url}/nowhere`)],
      ['console', await fetch(`${t.url}/ui/index.html`)],
      ['health', await fetch(`${t.url}/healthz`)],
      ['expectation refused', await expectTooLarge(t.url, t.config.bodyLimitBytes + 1)],
    ];
    for (const [path, response] of answers) {
      assert.ok(response.status > 0, path);
      assert.equal(response.headers.get('x-frame-options'), 'DENY', path);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', path);
      assert.match(response.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, path);
    }
    const statuses = answers.map(([, response]) => response.status);
    assert.deepEqual(statuses.slice(0, 4), [200, 200, 400, 404]);
    assert.equal(statuses[6], 413);
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

describe('inference hot path: a client that leaves while a lost model is loaded again', () => {
  let t: TestRouter;
  let model: string;
  before(async () => {
    // A large model, so loading it again takes long enough for a client to hang up during it.
    model = await ensureBigModel(128);
    t = await startTestRouter({
      env: { MODELDOCK_MODELS_DIR: TEST_MODELS_DIR, MODELDOCK_DRAIN_TIMEOUT_MS: '10000' },
    });
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'lost', model, dataset: 'ds-550' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });
  after(async () => {
    await t?.cleanup();
  });

  it(
    'lets go of both routes it held, so the next unload does not wait out the drain timeout',
    { timeout: 120_000 },
    async () => {
      const stale = takeRoute(t, 'lost');
      const input = (await getJson(`${t.url}/v2/models/lost`)).body.inputs[0];
      const width: number = input.shape[1];
      const body = JSON.stringify({
        inputs: [{ name: input.name, shape: [1, width], datatype: 'FP32', data: new Array(width).fill(0) }],
      });
      assert.ok(Buffer.byteLength(body) <= SMALL_BODY_BYTES, 'the request must take the hot path');
      // What a neighbour, or a worker restart the engine did not report, leaves behind.
      await t.router.workers.unload(stale.endpoint, stale.modelName);

      // The request reaches the worker, which answers 404: the router loads the model again.
      // The client hangs up the moment that load starts.
      const reloading = new Promise<void>((resolve) => {
        const unsubscribe = t.router.events.subscribe((event) => {
          if (
            event.type === 'server' &&
            event.server.serverId === stale.serverId &&
            event.server.state === 'loading'
          ) {
            unsubscribe();
            resolve();
          }
        });
      });
      const { hostname, port } = new URL(t.url);
      const request = http.request({
        hostname,
        port,
        method: 'POST',
        path: '/v2/models/lost/infer',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      const hungUp = new Promise<void>((resolve) => request.once('close', resolve));
      request.on('error', () => undefined); // the socket is destroyed on purpose
      request.end(body);
      await reloading;
      request.destroy();
      await hungUp;
      await waitForServer(t.router, stale.serverId, (s) => s.state === 'ready', 60_000);
      const served = await postJson(`${t.url}/v2/models/lost/infer`, JSON.parse(body));
      assert.equal(served.status, 200, JSON.stringify(served.body));

      const fresh = takeRoute(t, 'lost');
      assert.notEqual(fresh, stale, 'the heal opened a new route');
      assert.equal(stale.inFlight, 0, 'the stale route was let go exactly once');
      assert.equal(await fresh.drain(10_000), 0, 'the healed route was let go');
      assert.equal(fresh.inFlight, 0);
      const unloaded = await postJson(`${t.url}/v1/jobs/lost/unload`, {});
      assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
      assert.deepEqual(unloaded.body.warnings ?? [], [], 'nothing was left in flight');
    },
  );
});

/** The job's current route, for reading its in-flight count (taken and given back at once). */
function takeRoute(t: TestRouter, jobId: string): RouteEntry {
  const route = t.router.lifecycle.tryAcquireRoute(jobId);
  assert.ok(route, `job ${jobId} has a route`);
  route.release();
  return route;
}

/** The router's answer to `Expect: 100-continue` with a body over its limit (the body is never sent). */
function expectTooLarge(url: string, length: number): Promise<{ status: number; headers: Headers }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const request = http.request({
      hostname,
      port,
      method: 'POST',
      path: '/v2/models/h1/infer',
      headers: { 'content-type': 'application/json', 'content-length': length, expect: '100-continue' },
    });
    request.on('response', (response) => {
      response.resume();
      const headers = new Headers();
      for (const [name, value] of Object.entries(response.headers)) {
        if (typeof value === 'string') headers.set(name, value);
      }
      resolve({ status: response.statusCode!, headers });
    });
    request.on('error', reject);
    request.flushHeaders();
  });
}
