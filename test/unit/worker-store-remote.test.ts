/**
 * The router's store endpoint and the worker's remote store source, over real HTTP on
 * loopback with real files: the worker's secret opens it (and nothing else does, API key
 * or not), files come with their SHA-256, unchanged files are answered 304 and reused
 * from the cache, changed ones fetched again (the old blob deleted), links out of the
 * store refused, and a file whose bytes do not match the digest sent with them refused
 * with nothing kept. The runtime is the one stand-in: a list of one running worker
 * (which worker runs is the runtime's business, tested on the real cluster in
 * test/e2e/kubernetes-router-store.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { errorHandler } from '../../src/api/error-mapping.js';
import { workerStoreRoutes } from '../../src/api/routes/worker-store.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { Catalog } from '../../src/lifecycle/catalog.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { Runtime, WorkerInfo } from '../../src/runtime/runtime.js';
import { ModelStore } from '../../src/worker/model-store.js';
import { RemoteStoreSource } from '../../src/worker/remote-store-source.js';
import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';
import { reprDigestOf, sha256OfReprDigest } from '../../src/worker-store-protocol.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';

const SECRET = 'the-secret-of-worker-one-0123456789';
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

function oneWorkerRuntime(): Runtime {
  const worker = { name: 'w1', running: true, endpoint: 'http://10.0.0.9:8000' } as WorkerInfo;
  return {
    list: async () => [worker],
    workerSecret: (endpoint: string) => (endpoint === worker.endpoint ? SECRET : undefined),
  } as unknown as Runtime;
}

async function count(metrics: Metrics, file: string, status: string): Promise<number> {
  const { values } = await metrics.workerStoreFiles.get();
  return values.find((v) => v.labels.file === file && v.labels.status === status)?.value ?? 0;
}

describe('the router store endpoint and the worker remote store source', () => {
  let dir: string;
  let store: string;
  let app: FastifyInstance;
  let url: string;
  let metrics: Metrics;
  let cacheSerial = 0;
  const source = async (secret = SECRET) =>
    new RemoteStoreSource({ url, secret, cacheDir: await mkdtemp(path.join(dir, `cache${cacheSerial++}-`)) });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-remote-store-'));
    store = path.join(dir, 'store');
    await cp(MODELS_DIR, path.join(store, 'models'), { recursive: true });
    await cp(DATASETS_DIR, path.join(store, 'datasets'), { recursive: true });
    await writeFile(path.join(dir, 'outside.txt'), 'not for workers');
    await mkdir(path.join(store, 'models', 'escape'));
    await symlink(path.join(dir, 'outside.txt'), path.join(store, 'models', 'escape', 'model.onnx'));
    metrics = new Metrics();
    app = Fastify();
    app.setErrorHandler(errorHandler);
    await app.register(
      workerStoreRoutes({
        catalog: new Catalog(path.join(store, 'models'), path.join(store, 'datasets')),
        runtime: oneWorkerRuntime(),
        metrics,
      }),
    );
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 401 without the secret of a worker it runs, whatever else is sent', async () => {
    const strangers: Record<string, string>[] = [
      {},
      { [WORKER_SECRET_HEADER]: 'someone-elses-secret-0123456789' },
      { authorization: `Bearer ${SECRET}` },
    ];
    for (const headers of strangers) {
      for (const file of ['models/m-131/model.onnx', 'models/absent/model.onnx', 'models/m-131/secret.txt']) {
        const response = await fetch(`${url}/worker-store/${file}`, { headers });
        assert.equal(response.status, 401, `${file} ${JSON.stringify(headers)}`);
        const body = (await response.json()) as { error: { message: string } };
        assert.match(body.error.message, /this router's workers only/);
      }
    }
  });

  it('sends a store file with its SHA-256 as ETag and Repr-Digest, and 304 when unchanged', async () => {
    const bytes = await readFile(path.join(store, 'models', 'm-131', 'model.onnx'));
    const headers = { [WORKER_SECRET_HEADER]: SECRET };
    const response = await fetch(`${url}/worker-store/models/m-131/model.onnx`, { headers });
    assert.equal(response.status, 200);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
    assert.equal(response.headers.get('etag'), `"sha256-${sha256(bytes)}"`);
    assert.equal(sha256OfReprDigest(response.headers.get('repr-digest') ?? ''), sha256(bytes));
    assert.equal(Number(response.headers.get('content-length')), bytes.length);
    const again = await fetch(`${url}/worker-store/models/m-131/model.onnx`, {
      headers: { ...headers, 'if-none-match': response.headers.get('etag')! },
    });
    assert.equal(again.status, 304);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
    const head = await fetch(`${url}/worker-store/models/m-131/model.onnx`, { method: 'HEAD', headers });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), response.headers.get('etag'));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });

  it('serves only the store files of an id, from inside the store', async () => {
    const headers = { [WORKER_SECRET_HEADER]: SECRET };
    const status = async (file: string) => (await fetch(`${url}/worker-store/${file}`, { headers })).status;
    assert.equal(await status('models/m-131/model.json'), 200);
    assert.equal(await status('datasets/ds-550/records.jsonl'), 200);
    assert.equal(await status('models/m-131/records.jsonl'), 404, 'not a model file');
    assert.equal(await status('models/absent/model.onnx'), 404);
    assert.equal(await status('elsewhere/m-131/model.onnx'), 404);
    assert.equal(await status('models/..%2F..%2Foutside/model.onnx'), 400);
    assert.equal(await status('models/escape/model.onnx'), 400, 'a link out of the store');
    const list = await fetch(`${url}/worker-store/models`, { headers });
    assert.deepEqual(await list.json(), ['escape', 'm-131', 'm-132', 'm-133']);
  });

  it('fetches into the cache once, then reuses it while the router says it is unchanged', async () => {
    const remote = await source();
    const before200 = await count(metrics, 'model.onnx', '200');
    const first = await remote.file('model', 'm-131', 'model.onnx');
    assert.ok(first);
    assert.deepEqual(
      await readFile(first),
      await readFile(path.join(store, 'models', 'm-131', 'model.onnx')),
    );
    const second = await remote.file('model', 'm-131', 'model.onnx');
    assert.equal(second, first);
    assert.deepEqual(remote.counts, { fetched: 1, reused: 1 });
    assert.equal(await count(metrics, 'model.onnx', '200'), before200 + 1);
    // The worker's model store opens it from there.
    const model = await new ModelStore(remote, 1).open('j1', 'm-131');
    assert.equal(model.inputs[0]!.name, 'pixels');
    await model.session.release();
    assert.deepEqual(await new ModelStore(remote, 1).list(), ['escape', 'm-131', 'm-132', 'm-133']);
  });

  it('shares one fetch between concurrent reads of a file', async () => {
    const remote = await source();
    const paths = await Promise.all([1, 2, 3].map(() => remote.file('dataset', 'ds-550', 'records.jsonl')));
    assert.equal(new Set(paths).size, 1);
    assert.deepEqual(remote.counts, { fetched: 1, reused: 0 });
  });

  it('fetches a changed file again and deletes the blob of the old one', async () => {
    const file = path.join(store, 'models', 'm-131', 'model.json');
    const original = await readFile(file);
    const remote = await source();
    const cache = (remote as unknown as { options: { cacheDir: string } }).options.cacheDir;
    try {
      const first = (await remote.file('model', 'm-131', 'model.json'))!;
      assert.equal(path.basename(first), sha256(original));
      const changed = JSON.stringify({ ...JSON.parse(original.toString()), description: 'changed' });
      await writeFile(file, changed);
      const second = (await remote.file('model', 'm-131', 'model.json'))!;
      assert.equal(path.basename(second), sha256(changed));
      assert.equal(await readFile(second, 'utf8'), changed);
      assert.deepEqual(await readdir(path.join(cache, 'blobs')), [sha256(changed)]);
      assert.deepEqual(remote.counts, { fetched: 2, reused: 0 });
      // Gone from the router's store: gone from the cache.
      await rm(file);
      assert.equal(await remote.file('model', 'm-131', 'model.json'), undefined);
      assert.deepEqual(await readdir(path.join(cache, 'blobs')), []);
    } finally {
      await writeFile(file, original);
    }
  });

  it('refuses a wrong secret with the router’s 401, and a link out of the store', async () => {
    const stranger = await source('not-a-worker-secret-0123456789');
    await assert.rejects(
      stranger.file('model', 'm-131', 'model.onnx'),
      (error: unknown) =>
        error instanceof StoreUnavailableError &&
        /401.*does not know this worker's secret/.test(error.message),
    );
    await assert.rejects((await source()).file('model', 'escape', 'model.onnx'), /400/);
  });

  it('refuses bytes that do not match the digest sent with them, keeping nothing', async () => {
    // A router (or anything on the way) whose bytes are not what its digest says.
    const liar = http.createServer((_request, response) => {
      response.writeHead(200, {
        'content-type': 'application/octet-stream',
        'repr-digest': reprDigestOf(sha256('the real bytes')),
      });
      response.end('tampered bytes');
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    const cacheDir = await mkdtemp(path.join(dir, 'liar-'));
    try {
      const remote = new RemoteStoreSource({
        url: `http://127.0.0.1:${(liar.address() as AddressInfo).port}`,
        secret: SECRET,
        cacheDir,
      });
      await assert.rejects(
        remote.file('model', 'm-131', 'model.onnx'),
        /does not match its digest .* refused, nothing kept/,
      );
      assert.deepEqual(await readdir(path.join(cacheDir, 'blobs')), [], 'no partial file left');
      assert.deepEqual(await readdir(cacheDir), ['blobs'], 'no link made');
      assert.deepEqual(remote.counts, { fetched: 0, reused: 0 });
    } finally {
      liar.close();
    }
  });
});
