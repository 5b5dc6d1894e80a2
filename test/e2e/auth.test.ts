/**
 * Nobody drives the engine without a key: a real router (Docker runtime) with an admin
 * and an infer key, called over HTTP; and the real `modeldock start` for the safe default
 * bind, the refusal to expose itself without a key, and key rotation on SIGHUP.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { keyId } from '../../src/api/auth.js';
import { EXIT } from '../../src/cli/client/exit-codes.js';
import { PROTO_FILE } from '../../src/api/grpc/grpc-server.js';
import { DIGITS, ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { spawnRouter, type RouterProcess } from '../helpers/router-process.js';
import {
  bearer,
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  type TestRouter,
} from '../helpers/router.js';

const ADMIN = 'admin-e2e-key-0123456789abcdef';
const INFER = 'infer-e2e-key-0123456789abcdef';
const run = promisify(execFile);

const inferBody = {
  inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
  outputs: [{ name: 'label' }],
};

async function call(url: string, init: RequestInit = {}) {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

describe('API keys and scopes on a real router', () => {
  let router: TestRouter;

  before(async () => {
    router = await startTestRouter({
      keys: { admin: ADMIN, infer: INFER },
      env: { MODELDOCK_GRPC_PORT: String(await freePort()) },
    });
  });
  after(async () => {
    await router?.cleanup();
  });

  it('answers 401 with WWW-Authenticate and a JSON error, before any 404, and creates nothing', async () => {
    const attempts: [string, RequestInit][] = [
      ['/inference_router/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }],
      ['/v1/jobs', { method: 'GET' }],
      ['/v1/jobs/no-such-job', { method: 'GET' }],
      ['/v1/jobs/no-such-job/terminate', { method: 'POST' }],
      ['/v1/operations', { method: 'GET' }],
      ['/v1/events', { method: 'GET' }],
      ['/v1/reconcile', { method: 'POST' }],
      [
        '/v2/models/no-such-job/infer',
        { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } },
      ],
      ['/v2/repository/models/no-such-job/load', { method: 'POST' }],
      ['/metrics', { method: 'GET' }],
      ['/no/such/route', { method: 'GET' }],
    ];
    for (const key of [undefined, 'wrong-key-0123456789abcdef']) {
      for (const [url, init] of attempts) {
        const headers = { ...(init.headers as Record<string, string>), ...(key ? bearer(key) : {}) };
        const response = await call(`${router.url}${url}`, { ...init, headers });
        assert.equal(response.status, 401, `${init.method} ${url} with ${key ?? 'no key'}`);
        assert.equal(response.headers.get('www-authenticate'), 'Bearer realm="modeldock"');
        if (url.startsWith('/v2/')) assert.match(response.body.error, /key/, 'the protocol’s error form');
        else assert.equal(response.body.error.code, 'unauthorized');
        assert.ok(!JSON.stringify(response.body).includes('no-such-job'), 'says nothing about the job');
      }
    }
    const created = await postJson(`${router.url}/inference_router/`, {
      job_id: 'x1',
      model: 'm-131',
      dataset: 'ds-550',
      operation_type: 'DEPLOY_CREATE',
    });
    assert.equal(created.status, 401);
    assert.deepEqual(await instanceContainers(router.docker, router.instance), []);
    assert.deepEqual(await router.store.listJobs(), []);
  });

  it('keeps health open without a key', async () => {
    for (const url of ['/healthz', '/readyz', '/v2/health/live', '/v2/health/ready']) {
      assert.equal((await call(`${router.url}${url}`)).status, 200, url);
    }
  });

  it('admin drives operations; infer infers (hot path and route) and reads metadata but gets 403 on operations', async () => {
    const created = await postJson(
      `${router.url}/inference_router/`,
      { job_id: 'a1', model: 'm-131', dataset: 'ds-550', operation_type: 'DEPLOY_CREATE' },
      bearer(ADMIN),
    );
    assert.equal(created.status, 200, JSON.stringify(created.body));

    // Twice: the first may take the route lookup, the second the cached hot path.
    for (let i = 0; i < 2; i++) {
      const inferred = await postJson(`${router.url}/v2/models/a1/infer`, inferBody, bearer(INFER));
      assert.equal(inferred.status, 200, JSON.stringify(inferred.body));
      assert.deepEqual(inferred.body.outputs[0].data, [DIGITS[0]!.label]);
      const refused = await postJson(`${router.url}/v2/models/a1/infer`, inferBody);
      assert.equal(refused.status, 401, 'the hot path asks for the key too');
    }
    assert.equal((await postJson(`${router.url}/v1/jobs/a1/infer`, inferBody, bearer(INFER))).status, 200);
    assert.equal((await getJson(`${router.url}/v2/models/a1`, bearer(INFER))).status, 200);
    assert.equal((await getJson(`${router.url}/v2/models/a1/ready`, bearer(INFER))).status, 200);
    assert.equal((await postJson(`${router.url}/v2/repository/index`, undefined, bearer(INFER))).status, 200);
    assert.equal((await fetch(`${router.url}/metrics`, { headers: bearer(INFER) })).status, 200);

    for (const [method, url] of [
      ['POST', '/inference_router/'],
      ['GET', '/v1/jobs'],
      ['POST', '/v1/jobs/a1/unload'],
      ['DELETE', '/v1/jobs/a1'],
      ['GET', '/v1/operations'],
      ['GET', '/v1/pool'],
      ['POST', '/v1/reconcile'],
      ['POST', '/v2/repository/models/a1/unload'],
    ] as const) {
      const response = await call(`${router.url}${url}`, {
        method,
        headers: { ...bearer(INFER), 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: '{}' } : {}),
      });
      assert.equal(response.status, 403, `${method} ${url}`);
      const error = response.body.error;
      // /v2 answers in the protocol's own form, {"error": "<message>"}.
      if (url.startsWith('/v2/')) assert.match(error, new RegExp(keyId(INFER)));
      else {
        assert.equal(error.code, 'forbidden');
        assert.match(error.message, new RegExp(keyId(INFER)));
      }
    }
    const { server } = await router.router.lifecycle.getJob('a1');
    assert.equal(server?.state, 'ready', 'the refused unload changed nothing');
  });

  it('names the caller of every operation by key id: /v1/operations, the events stream, on-demand loads', async () => {
    const controller = new AbortController();
    const events = await fetch(`${router.url}/v1/events`, {
      signal: controller.signal,
      headers: bearer(ADMIN),
    });
    const reader = events.body!.getReader();
    const streamed: { type: string; reason: string; caller: string }[] = [];
    const reading = (async () => {
      let text = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += Buffer.from(value).toString();
        const frames = text.split('\n\n');
        text = frames.pop()!;
        for (const frame of frames) {
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (frame.startsWith('event: operation') && data) streamed.push(JSON.parse(data).operation);
        }
        if (streamed.some((o) => o.reason === 'on_demand')) return;
      }
    })();
    assert.equal((await postJson(`${router.url}/v1/jobs/a1/unload`, {}, bearer(ADMIN))).status, 200);
    // The infer key's request loads the server on demand: that DEPLOY_LOAD is the infer key's.
    assert.equal((await postJson(`${router.url}/v2/models/a1/infer`, inferBody, bearer(INFER))).status, 200);
    await reading;
    controller.abort();
    assert.deepEqual(
      streamed.map((o) => [o.type, o.reason, o.caller]),
      [
        ['DEPLOY_UNLOAD', 'request', keyId(ADMIN)],
        ['DEPLOY_LOAD', 'on_demand', keyId(INFER)],
      ],
    );

    const listed = await getJson(`${router.url}/v1/operations?job_id=a1`, bearer(ADMIN));
    assert.deepEqual(
      listed.body.operations.map((o: { type: string; caller: string }) => [o.type, o.caller]),
      [
        ['DEPLOY_LOAD', keyId(INFER)],
        ['DEPLOY_UNLOAD', keyId(ADMIN)],
        ['DEPLOY_CREATE', keyId(ADMIN)],
      ],
    );
    assert.ok(!JSON.stringify(listed.body).includes(ADMIN), 'never the key itself');
  });

  it('asks gRPC calls for the same keys (authorization metadata); health stays open', async () => {
    const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true, defaults: true });
    const Service = (grpc.loadPackageDefinition(definition) as any).inference.GRPCInferenceService;
    const client = new Service(`127.0.0.1:${router.router.grpcPort}`, grpc.credentials.createInsecure());
    const rpc = (method: string, request: object, key?: string) => {
      const metadata = new grpc.Metadata();
      if (key) metadata.set('authorization', `Bearer ${key}`);
      return new Promise<any>((resolve, reject) =>
        client[method](
          request,
          metadata,
          { deadline: Date.now() + 10_000 },
          (error: Error | null, answer: unknown) => (error ? reject(error) : resolve(answer)),
        ),
      );
    };
    const refused = (promise: Promise<unknown>, code: grpc.status) =>
      assert.rejects(promise, (error: grpc.ServiceError) => {
        assert.equal(error.code, code, error.details);
        return true;
      });
    try {
      assert.deepEqual(await rpc('ServerLive', {}), { live: true });
      await refused(rpc('ServerMetadata', {}), grpc.status.UNAUTHENTICATED);
      await refused(rpc('ServerMetadata', {}, 'wrong-key-0123456789abcdef'), grpc.status.UNAUTHENTICATED);
      assert.equal((await rpc('ServerMetadata', {}, INFER)).name, 'modeldock');
      assert.ok(Array.isArray((await rpc('RepositoryIndex', {}, INFER)).models));
      await refused(
        rpc('RepositoryModelUnload', { repository_name: '', model_name: 'a1' }, INFER),
        grpc.status.PERMISSION_DENIED,
      );
      const { server } = await router.router.lifecycle.getJob('a1');
      assert.equal(server?.state, 'ready', 'the refused unload changed nothing');
    } finally {
      client.close();
    }
  });

  it('answers an undeclared method on a known path with 405 and Allow', async () => {
    const response = await call(`${router.url}/v1/jobs`, { method: 'PUT', headers: bearer(ADMIN) });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD, POST');
    assert.equal(response.body.error.code, 'method_not_allowed');
    const job = await call(`${router.url}/v1/jobs/a1`, { method: 'PATCH', headers: bearer(ADMIN) });
    assert.equal(job.status, 405);
    assert.equal(job.headers.get('allow'), 'GET, HEAD, DELETE');
    assert.equal((await call(`${router.url}/v1/nothing-here`, { headers: bearer(ADMIN) })).status, 404);
  });
});

describe('modeldock start: the safe default bind, the refusal, key rotation', () => {
  let dir: string;
  const started: RouterProcess[] = [];
  const processEnv = () => ({
    MODELDOCK_RUNTIME: 'process',
    MODELDOCK_DATABASE: `sqlite:${path.join(dir, `m${started.length}.db`)}`,
    MODELDOCK_INSTANCE: `auth${process.pid}`,
    MODELDOCK_API_KEY: '',
    MODELDOCK_INFER_KEY: '',
  });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-auth-'));
  });
  after(async () => {
    for (const router of started) await router.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('without a key listens on loopback only (0.0.0.0 on this host still reaches it) and says so first', async () => {
    const log = path.join(dir, 'default.log');
    const router = await spawnRouter({ ...processEnv(), MODELDOCK_HOST: '' }, log);
    started.push(router);
    const port = new URL(router.url).port;
    assert.equal(
      (await call(`http://0.0.0.0:${port}/v1/jobs`)).status,
      200,
      'the original curl target, no key',
    );
    const outside = Object.values(os.networkInterfaces())
      .flat()
      .find((address) => address && address.family === 'IPv4' && !address.internal);
    assert.ok(outside, 'this host has a non-loopback address to try');
    await assert.rejects(fetch(`http://${outside.address}:${port}/healthz`), 'not reachable from outside');
    const first = JSON.parse((await readFile(log, 'utf8')).split('\n')[0]!);
    assert.match(first.msg, /no API key configured: listening on 127\.0\.0\.1 only/);

    // The original README's TEMP request, verbatim, without a key: recorded as anonymous.
    const temp = await call(`http://0.0.0.0:${port}/inference_router/`, {
      method: 'POST',
      headers: { accept: 'application/json', 'Content-Type': 'application/json' },
      body: ORIGIN_REQUESTS[4],
    });
    assert.equal(temp.status, 200, JSON.stringify(temp.body).slice(0, 300));
    const operation = (await call(`${router.url}/v1/operations/${temp.body.operation_id}`)).body;
    assert.equal(operation.caller, 'anonymous');
    const logged = (await readFile(log, 'utf8'))
      .split('\n')
      .filter((line) => line.includes(temp.body.operation_id))
      .map((line) => JSON.parse(line));
    assert.deepEqual(
      logged.map((line) => [line.type, line.status, line.caller]),
      [['TEMP', 'succeeded', 'anonymous']],
      'the operation’s log line names its caller',
    );
  });

  it('refuses to listen on all interfaces without a key, naming both fixes', async () => {
    const failed = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...processEnv(), MODELDOCK_HOST: '0.0.0.0', MODELDOCK_PORT: '0' },
    }).then(
      () => assert.fail('the router started'),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failed.code, EXIT.usage, 'a configuration error: the command line’s exit code');
    assert.match(failed.stderr, /MODELDOCK_API_KEY/);
    assert.match(failed.stderr, /MODELDOCK_AUTH=off/);
  });

  it('re-reads the key file on SIGHUP: old and new key during the move, then only the new one', async () => {
    const keyFile = path.join(dir, 'keys');
    const [oldKey, newKey] = ['old-rotating-key-0123456789', 'new-rotating-key-0123456789'];
    await writeFile(keyFile, `${oldKey}\n`, { mode: 0o600 });
    const log = path.join(dir, 'rotate.log');
    const router = await spawnRouter({ ...processEnv(), MODELDOCK_API_KEY_FILE: keyFile }, log);
    started.push(router);
    const status = async (key: string) =>
      (await call(`${router.url}/v1/jobs`, { headers: bearer(key) })).status;
    assert.equal(await status(oldKey), 200);
    assert.equal(await status(newKey), 401);

    const until = async (key: string, expected: number) => {
      const deadline = Date.now() + 10_000;
      while ((await status(key)) !== expected) {
        if (Date.now() > deadline) assert.fail(`key never answered ${expected}`);
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    await writeFile(keyFile, `${oldKey}\n${newKey}\n`);
    router.child.kill('SIGHUP');
    await until(newKey, 200);
    assert.equal(await status(oldKey), 200, 'both work during the move');
    await writeFile(keyFile, `${newKey}\n`);
    router.child.kill('SIGHUP');
    await until(oldKey, 401);
    assert.equal(await status(newKey), 200);
    // A broken file keeps the keys in force instead of locking everyone out.
    await writeFile(keyFile, '# emptied by mistake\n');
    router.child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (!(await readFile(log, 'utf8')).includes('API keys not re-read')) {
      if (Date.now() > deadline) assert.fail('the router did not report the bad key file');
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(await status(newKey), 200);
  });
});
