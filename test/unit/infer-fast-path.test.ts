/**
 * The inference hot path's own rules, over real sockets: which requests it takes and
 * which it leaves to the Fastify route, what it sends the worker, and the JSON error
 * when the worker is not there. The "worker" is a plain HTTP server that records what
 * it receives; the lifecycle is reduced to the route cache the hot path reads.
 */
import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KeyRing } from '../../src/api/auth.js';
import { SMALL_BODY_BYTES, inferFastPath, inferJobOf } from '../../src/api/infer-fast-path.js';
import { RouteEntry, RouteTable } from '../../src/lifecycle/route-table.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { freePort } from '../helpers/ports.js';

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

describe('inferJobOf', () => {
  it('names the job of /v2/models/<job>/infer and nothing else', () => {
    assert.equal(inferJobOf('/v2/models/a1/infer'), 'a1');
    assert.equal(inferJobOf('/v2/models/job.with-dots_1/infer'), 'job.with-dots_1');
    for (const url of [
      '/v2/models//infer',
      '/v2/models/a1',
      '/v2/models/a1/versions/1/infer',
      '/v2/models/a1/infer?x=1',
      '/v2/models/a%31/infer',
      '/v1/models/a1/infer',
      '/v2/models/a1/inferx',
    ]) {
      assert.equal(inferJobOf(url), undefined, url);
    }
  });
});

describe('inference hot path', () => {
  const received: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
  /** Called with each request to `/v2/models/hold/…`, which the worker never answers. */
  let onHeld: ((request: http.IncomingMessage) => void) | undefined;
  const worker = http.createServer((request, response) => {
    if (request.url!.startsWith('/v2/models/hold/')) {
      onHeld?.(request);
      return;
    }
    if (request.url!.startsWith('/v2/models/lost/')) {
      // A worker that lost the model: "not loaded".
      request.resume();
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not loaded"}');
      return;
    }
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ url: request.url!, headers: request.headers, body });
      response.writeHead(201, {
        'content-type': 'application/json',
        'x-worker': 'yes',
        connection: 'keep-alive',
      });
      response.end(JSON.stringify({ echoed: body.length }));
    });
  });
  const workers = new WorkerClient();
  const routes = new Map<string, RouteEntry>();
  /** Jobs with several replicas, balanced as the router does. */
  const replicas = new RouteTable();
  const invalidated: string[] = [];
  const observed: [string, number][] = [];
  const INFER_KEY = 'infer-key-for-the-fast-path-test';
  const keys = new KeyRing({ admin: [], infer: [INFER_KEY] });
  let router: http.Server;
  let url: string;
  /** What healLostModel does for this test: called with the stale route, resolves with the fresh one, taken. */
  let heal: (stale: RouteEntry) => Promise<RouteEntry> = () => Promise.reject(new Error('no heal expected'));

  /** The route a heal of job `lost` hands over: its worker has the model again (as `healed`). */
  let healed: RouteEntry;
  const route = (jobId: string, endpoint: string) => new RouteEntry(jobId, 'inf-0001', endpoint, jobId);

  before(async () => {
    const workerUrl = await listen(worker);
    routes.set('a1', route('a1', workerUrl));
    routes.set('gone', route('gone', `http://127.0.0.1:${await freePort()}`));
    routes.set('hold', route('hold', workerUrl));
    routes.set('lost', route('lost', workerUrl));
    healed = new RouteEntry('lost', 'inf-0001', workerUrl, 'healed');
    const fastPath = inferFastPath({
      lifecycle: {
        tryAcquireRoute: (jobId) => replicas.acquire(jobId) ?? routes.get(jobId)?.acquire(),
        workerDidNotAnswer: (route) => void invalidated.push(route.jobId),
        invalidateRoute: (route) => void replicas.withdrawServer(route.jobId, route.serverId),
        healLostModel: (stale) => heal(stale),
      },
      workers,
      metrics: { observeInference: (jobId, status) => void observed.push([jobId, status]) },
      bodyLimitBytes: 1024 * 1024,
      admits: (authorization) => keys.authorize(authorization, 'infer').ok,
    });
    // What the hot path declines, the "Fastify route" answers with 299 here.
    router = http.createServer((request, response) => {
      if (fastPath(request, response)) return;
      request.resume();
      request.on('end', () => response.writeHead(299).end('declined'));
    });
    url = await listen(router);
  });
  after(async () => {
    await workers.close();
    router.closeAllConnections();
    worker.closeAllConnections();
    await new Promise((resolve) => router.close(resolve));
    await new Promise((resolve) => worker.close(resolve));
  });

  const post = (
    path: string,
    body: string | ReadableStream,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${INFER_KEY}`, ...headers },
      body,
      ...(typeof body === 'string' ? {} : { duplex: 'half' }),
      ...(signal ? { signal } : {}),
    } as RequestInit);

  it('sends a cached job’s request to its worker and passes status, headers and body back', async () => {
    received.length = 0;
    observed.length = 0;
    const response = await post('/v2/models/a1/infer', '{"inputs":[]}', { 'x-trace': 't1' });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get('x-worker'), 'yes');
    assert.deepEqual(await response.json(), { echoed: 13 });
    assert.equal(received.length, 1);
    assert.equal(received[0]!.url, '/v2/models/a1/infer');
    assert.equal(received[0]!.body, '{"inputs":[]}');
    assert.equal(received[0]!.headers['x-trace'], 't1');
    assert.equal(received[0]!.headers['content-length'], '13');
    assert.equal(received[0]!.headers.authorization, undefined, 'the caller’s key stays with the router');
    assert.deepEqual(observed, [['a1', 201]]);
    assert.equal(routes.get('a1')!.inFlight, 0, 'the request is no longer counted on its route');
  });

  it('leaves uncached jobs, large or chunked bodies and other methods to the route', async () => {
    received.length = 0;
    const big = 'x'.repeat(SMALL_BODY_BYTES + 1);
    const declined = [
      await post('/v2/models/unknown/infer', '{}'),
      await post('/v2/models/a1/infer', big),
      await post('/v2/models/a1/infer', new Blob(['{}']).stream()),
      await fetch(`${url}/v2/models/a1/infer`),
    ];
    for (const response of declined) assert.equal(response.status, 299);
    assert.equal(received.length, 0, 'nothing reached the worker');
  });

  it('leaves a request without a valid key to the route (which answers 401), nothing reaches the worker', async () => {
    received.length = 0;
    const declined = [
      await post('/v2/models/a1/infer', '{}', { authorization: '' }),
      await post('/v2/models/a1/infer', '{}', { authorization: 'Bearer not-the-key-at-all-no' }),
      await post('/v2/models/a1/infer', '{}', { authorization: `Basic ${INFER_KEY}` }),
    ];
    for (const response of declined) assert.equal(response.status, 299);
    assert.equal(received.length, 0);
  });

  it('answers an unreachable worker with a 502 in the protocol’s error form and drops the cached route', async () => {
    invalidated.length = 0;
    const response = await post('/v2/models/gone/infer', '{}');
    assert.equal(response.status, 502);
    const body = (await response.json()) as { error: string };
    assert.match(body.error, /worker of job gone did not answer/);
    assert.deepEqual(invalidated, ['gone']);
    assert.equal(routes.get('gone')!.inFlight, 0);
  });

  it('sends a request whose replica did not answer to another replica of the job, once', async () => {
    invalidated.length = 0;
    const dead = replicas.set(
      new RouteEntry('pair', 'inf-0001', `http://127.0.0.1:${await freePort()}`, 'pair'),
    );
    const alive = replicas.set(new RouteEntry('pair', 'inf-0002', routes.get('a1')!.endpoint, 'pair'));
    // The live replica looks busier, so the first request goes to the dead one.
    alive.acquire();
    for (let i = 0; i < 10; i++) {
      const response = await post('/v2/models/pair/infer', '{}');
      assert.equal(response.status, 201, 'answered by the replica that runs');
      await response.arrayBuffer();
      if (i === 0) alive.release();
    }
    assert.ok(dead.withdrawn, "the dead replica's route is dropped");
    assert.deepEqual(replicas.list('pair'), [alive]);
    assert.deepEqual(invalidated, [], 'no request got a 502');
    assert.equal(dead.inFlight, 0);
    assert.equal(alive.inFlight, 0);
  });

  it('cancels the worker’s request when the client leaves, and keeps the route: the worker did nothing wrong', async () => {
    invalidated.length = 0;
    observed.length = 0;
    const atWorker = new Promise<http.IncomingMessage>((resolve) => (onHeld = resolve));
    const client = new AbortController();
    const answer = post('/v2/models/hold/infer', '{}', {}, client.signal).catch((error: Error) => error);
    const upstream = await atWorker;
    assert.equal(routes.get('hold')!.inFlight, 1, 'counted while the worker has it');
    const upstreamClosed = new Promise<void>((resolve) => upstream.once('close', () => resolve()));
    client.abort();
    assert.equal(((await answer) as Error).name, 'AbortError');
    await upstreamClosed;
    assert.deepEqual(invalidated, [], 'the route stays');
    assert.deepEqual(observed, [], 'no 502 is counted for a request nobody waits for');
    assert.equal(routes.get('hold')!.inFlight, 0, 'and no longer counted once the client left');
  });

  it('sends the body again on the healed route after a worker lost its model, and lets both routes go', async () => {
    const stale = routes.get('lost')!;
    heal = async () => healed.acquire();
    const response = await post('/v2/models/lost/infer', '{"inputs":[1]}');
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), { echoed: 14 });
    assert.equal(stale.inFlight, 0, 'the stale route is let go once');
    assert.equal(await healed.drain(5_000), 0, 'the healed route is let go');
    assert.equal(healed.inFlight, 0);
  });

  it('lets both routes go exactly once when the client leaves while the model is loaded again', async () => {
    const stale = routes.get('lost')!;
    let finishHeal!: () => void;
    const healStarted = new Promise<void>((started) => {
      heal = () => {
        started();
        return new Promise((resolve) => (finishHeal = () => resolve(healed.acquire())));
      };
    });
    const client = new AbortController();
    const answer = post('/v2/models/lost/infer', '{}', {}, client.signal).catch((error: Error) => error);
    await healStarted;
    assert.equal(stale.inFlight, 1, 'counted on the stale route while the heal runs');
    client.abort();
    assert.equal(((await answer) as Error).name, 'AbortError');
    // The router sees the close once the client's socket is gone: it lets the stale route go.
    assert.equal(await stale.drain(5_000), 0);
    finishHeal();
    assert.equal(await healed.drain(5_000), 0, 'the healed route, handed over taken, is let go');
    assert.equal(healed.inFlight, 0);
    assert.equal(stale.inFlight, 0, 'and the stale one was not let go twice');
  });
});
