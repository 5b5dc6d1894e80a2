/**
 * The router's store endpoint and the worker's remote store source, over real HTTP on
 * loopback with real files: the worker's secret opens it (and nothing else does, API key
 * or not), files come with their SHA-256, unchanged files are answered 304 and reused
 * from the cache, changed ones fetched again (the old blob deleted), links out of the
 * store refused, and a file whose bytes do not match the digest sent with them refused
 * with nothing kept. A model's whole directory (a foreign server's) is listed and served
 * to a guard the same way, confined to that directory and bounded, and fetched by the
 * guard whole or not at all. The runtime is the one stand-in: a list of one running worker
 * (which worker runs is the runtime's business, tested on the real cluster in
 * test/e2e/kubernetes-router-store.test.ts).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
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
import { linkRequest } from '../../src/worker/guard-repository.js';
import { ModelDirFetchError, fetchModelDir } from '../../src/worker/model-dir-fetch.js';
import { ModelStore } from '../../src/worker/model-store.js';
import { RemoteStoreSource } from '../../src/worker/remote-store-source.js';
import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';
import {
  MODEL_DIR_LIMITS,
  reprDigestOf,
  sha256OfReprDigest,
  type ModelDirListing,
} from '../../src/worker-store-protocol.js';
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
    // A FIFO blocks whoever opens it for reading until a writer comes: it must be refused, not opened.
    await mkdir(path.join(store, 'models', 'fifo'));
    execFileSync('mkfifo', [path.join(store, 'models', 'fifo', 'model.onnx')]);
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
    assert.equal(await status('models/fifo/model.onnx'), 404, 'a FIFO is no file to send');
    const list = await fetch(`${url}/worker-store/models`, { headers });
    assert.deepEqual(await list.json(), ['escape', 'fifo', 'm-131', 'm-132', 'm-133']);
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
    assert.deepEqual(await new ModelStore(remote, 1).list(), ['escape', 'fifo', 'm-131', 'm-132', 'm-133']);
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
  describe("a model's whole directory, for a foreign server's guard", () => {
    const headers = { [WORKER_SECRET_HEADER]: SECRET };
    const modelFile = (model: string, file: string) => path.join(store, 'models', model, file);
    // The path sent as written (fetch's URL parser would resolve a "%2E%2E" segment itself).
    const getStatus = (route: string) =>
      new Promise<number>((resolve, reject) => {
        const { hostname, port } = new URL(url);
        http
          .get({ host: hostname, port, path: `/worker-store/${route}`, headers }, (response) => {
            response.resume();
            resolve(response.statusCode!);
          })
          .once('error', reject);
      });
    const fetchSource = (maxBytes = 2 ** 30, secret = SECRET) => ({
      url,
      secret,
      maxBytes,
      knownWithinMs: 300,
    });

    before(async () => {
      // A model whose directory links out of itself (to a sibling model's file).
      await mkdir(path.join(store, 'models', 'leaky', '1'), { recursive: true });
      await writeFile(path.join(store, 'models', 'leaky', 'config.pbtxt'), 'name: "leaky"');
      await symlink(modelFile('m-131', 'model.onnx'), path.join(store, 'models', 'leaky', '1', 'model.onnx'));
      // A link to a file inside the model's own directory is served as that file.
      await mkdir(path.join(store, 'models', 'linked'));
      await writeFile(path.join(store, 'models', 'linked', 'weights.bin'), 'weights');
      await symlink('weights.bin', path.join(store, 'models', 'linked', 'alias.bin'));
      // One file more than a directory may hold.
      await mkdir(path.join(store, 'models', 'crowded'));
      for (let i = 0; i <= MODEL_DIR_LIMITS.files; i += 1) {
        await writeFile(path.join(store, 'models', 'crowded', `f${i}`), '');
      }
    });

    it("lists every file of Triton's layout with its size and SHA-256, to a worker's secret only", async () => {
      const response = await fetch(`${url}/worker-store/model-dirs/m-133`, { headers });
      assert.equal(response.status, 200);
      const listing = (await response.json()) as ModelDirListing;
      assert.equal(listing.model, 'm-133');
      assert.deepEqual(
        listing.files.map((f) => f.path),
        ['1/model.py', '1/weights.npz', 'config.pbtxt', 'model.json'],
      );
      for (const file of listing.files) {
        const bytes = await readFile(modelFile('m-133', file.path));
        assert.deepEqual([file.size, file.sha256], [bytes.length, sha256(bytes)], file.path);
      }
      assert.equal(
        listing.bytes,
        listing.files.reduce((sum, f) => sum + f.size, 0),
      );
      const linked = (await (
        await fetch(`${url}/worker-store/model-dirs/linked`, { headers })
      ).json()) as ModelDirListing;
      assert.deepEqual(
        linked.files.map((f) => [f.path, f.size]),
        [
          ['alias.bin', 7],
          ['weights.bin', 7],
        ],
      );
      for (const route of ['model-dirs/m-133', 'model-dirs/m-133/config.pbtxt', 'model-dirs/absent']) {
        const stranger = await fetch(`${url}/worker-store/${route}`, {
          headers: { [WORKER_SECRET_HEADER]: 'someone-elses-secret-0123456789' },
        });
        assert.equal(stranger.status, 401, route);
      }
    });

    it('serves a file of the directory with its digest, and nothing outside the directory', async () => {
      const bytes = await readFile(modelFile('m-133', '1/model.py'));
      const response = await fetch(`${url}/worker-store/model-dirs/m-133/1/model.py`, { headers });
      assert.equal(response.status, 200);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
      assert.equal(sha256OfReprDigest(response.headers.get('repr-digest') ?? ''), sha256(bytes));
      assert.equal(await getStatus('model-dirs/m-133/1/absent.py'), 404);
      assert.equal(await getStatus('model-dirs/m-133/1'), 404, 'a directory is no file');
      assert.equal(await getStatus('model-dirs/absent'), 404);
      assert.equal(await getStatus('model-dirs/absent/config.pbtxt'), 404);
      // Another model's file, the store's parent, by any spelling of "..": refused.
      assert.equal(await getStatus('model-dirs/m-133/..%2Fm-131%2Fmodel.onnx'), 400);
      assert.equal(await getStatus('model-dirs/m-133/1/%2E%2E/%2E%2E/m-131/model.onnx'), 400);
      assert.equal(await getStatus('model-dirs/m-133/.%2F1%2Fmodel.py'), 400);
      assert.equal(await getStatus('model-dirs/..%2Foutside.txt/x'), 400);
      assert.equal(await getStatus('model-dirs/leaky/1/model.onnx'), 400, 'a link out of the directory');
      assert.equal(await getStatus(`model-dirs/m-133/${'a/'.repeat(MODEL_DIR_LIMITS.depth + 1)}x`), 400);
    });

    it('refuses, whole and with its reason, a directory that links out of itself or holds too many files', async () => {
      const leaky = await fetch(`${url}/worker-store/model-dirs/leaky`, { headers });
      assert.equal(leaky.status, 400);
      assert.match(
        ((await leaky.json()) as { error: { message: string } }).error.message,
        /resolves outside/,
      );
      const crowded = await fetch(`${url}/worker-store/model-dirs/crowded`, { headers });
      assert.equal(crowded.status, 400);
      assert.match(
        ((await crowded.json()) as { error: { message: string } }).error.message,
        new RegExp(`more than ${MODEL_DIR_LIMITS.files} files`),
      );
    });

    it("the guard fetches a model's directory whole, read-only, replacing what was there", async () => {
      const repository = await mkdtemp(path.join(dir, 'repository-'));
      const destination = path.join(repository, 'a1');
      const fetched = await fetchModelDir(fetchSource(), 'm-133', destination);
      assert.equal(fetched.files, 4);
      for (const file of ['1/model.py', '1/weights.npz', 'config.pbtxt', 'model.json']) {
        assert.deepEqual(
          await readFile(path.join(destination, file)),
          await readFile(modelFile('m-133', file)),
        );
        assert.equal((await stat(path.join(destination, file))).mode & 0o777, 0o444, file);
      }
      assert.equal((await stat(path.join(destination, '1'))).mode & 0o777, 0o555);
      // Again over the first copy (a pooled server handed the same name twice).
      await fetchModelDir(fetchSource(), 'm-132', destination);
      assert.deepEqual((await readdir(destination)).sort(), [
        'model-settings.json',
        'model.joblib',
        'model.json',
      ]);
      assert.deepEqual(await readdir(repository), ['a1'], 'nothing else left beside it');
    });

    it('the guard refuses a model larger than its repository, a wrong secret and tampered bytes, keeping nothing', async () => {
      const repository = await mkdtemp(path.join(dir, 'repository-'));
      const destination = path.join(repository, 'a1');
      await assert.rejects(
        fetchModelDir(fetchSource(1024), 'm-133', destination),
        (error: unknown) =>
          error instanceof ModelDirFetchError &&
          error.status === 413 &&
          /more than this worker's repository holds/.test(error.message),
      );
      await assert.rejects(
        fetchModelDir(fetchSource(2 ** 30, 'not-a-worker-secret-0123456789'), 'm-133', destination),
        /401.*does not know this worker's secret/,
      );
      await assert.rejects(
        fetchModelDir(fetchSource(), 'leaky', destination),
        (error: unknown) => error instanceof ModelDirFetchError && error.status === 400,
      );
      // A router (or anything on the way) whose bytes are not what it listed.
      const listing = JSON.stringify({
        model: 'm-133',
        files: [{ path: 'config.pbtxt', size: 14, sha256: sha256('the real bytes') }],
        bytes: 14,
      });
      const liar = http.createServer((request, response) => {
        if (request.url?.endsWith('/m-133')) return response.end(listing);
        response.writeHead(200, { 'repr-digest': reprDigestOf(sha256('the real bytes')) });
        response.end('tampered bytes');
      });
      await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
      try {
        const lying = { ...fetchSource(), url: `http://127.0.0.1:${(liar.address() as AddressInfo).port}` };
        await assert.rejects(fetchModelDir(lying, 'm-133', destination), /does not match its listing/);
      } finally {
        liar.close();
      }
      assert.deepEqual(await readdir(repository), [], 'no partial directory left');
    });

    it('the guard asks again while the router does not know its worker yet (a Pod just started)', async () => {
      const bytes = 'name: "a1"';
      let asked = 0;
      // The router's answers while the cluster has not yet reported the Pod running, then after.
      const router = http.createServer((request, response) => {
        asked += 1;
        if (asked <= 2) return response.writeHead(401).end('{"error":{}}');
        if (request.url?.endsWith('/m-133')) {
          return response.end(
            JSON.stringify({
              model: 'm-133',
              files: [{ path: 'config.pbtxt', size: bytes.length, sha256: sha256(bytes) }],
              bytes: bytes.length,
            }),
          );
        }
        response.writeHead(200, { 'repr-digest': reprDigestOf(sha256(bytes)) }).end(bytes);
      });
      await new Promise<void>((resolve) => router.listen(0, '127.0.0.1', resolve));
      try {
        const repository = await mkdtemp(path.join(dir, 'repository-'));
        const source = {
          ...fetchSource(),
          url: `http://127.0.0.1:${(router.address() as AddressInfo).port}`,
          knownWithinMs: 10_000,
        };
        await fetchModelDir(source, 'm-133', path.join(repository, 'a1'));
        assert.equal(await readFile(path.join(repository, 'a1', 'config.pbtxt'), 'utf8'), bytes);
        assert.equal(asked, 4, 'two refusals, then the listing and the file');
      } finally {
        router.close();
      }
    });

    it("a pooled server's guard fetches the model it is handed from the router (PUT /modeldock/repository/<job>)", async () => {
      const repository = await mkdtemp(path.join(dir, 'repository-'));
      const links = { repository, store: '', fetch: fetchSource() };
      const put = (name: string, model: string) =>
        linkRequest(links, name, Buffer.from(JSON.stringify({ model })));
      assert.deepEqual(await put('a1', 'm-132'), {
        status: 200,
        body: {
          name: 'a1',
          model: 'm-132',
          files: 3,
          bytes:
            (await stat(modelFile('m-132', 'model.joblib'))).size +
            (await stat(modelFile('m-132', 'model.json'))).size +
            (await stat(modelFile('m-132', 'model-settings.json'))).size,
        },
      });
      assert.deepEqual(
        await readFile(path.join(repository, 'a1', 'model.joblib')),
        await readFile(modelFile('m-132', 'model.joblib')),
      );
      assert.equal((await put('a2', 'absent')).status, 404);
      assert.equal((await put('../a3', 'm-132')).status, 400);
      assert.deepEqual(await readdir(repository), ['a1']);
    });
  });
});
