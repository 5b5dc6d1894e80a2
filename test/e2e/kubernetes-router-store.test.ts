/**
 * MODELDOCK_K8S_STORE=router on the real test cluster: worker Pods mount no store at all
 * (no hostPath, no claim; an emptyDir cache) and fetch their model and dataset from the
 * router, which listens on the pod bridge's address (with a key: it is off loopback).
 * The original five requests run verbatim; a second load of a model in the same Pod is
 * answered 304 by the router and nothing is downloaded again; a file changed in the
 * router's store is fetched again; the store endpoint lets in a running worker's secret
 * and nothing else (no secret, a wrong one, an API key: 401).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { secretOfPod } from '../../src/runtime/kubernetes/pod-spec.js';
import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import {
  BRIDGE_ADDRESS,
  TEST_NAMESPACE,
  cluster,
  freeBridgePort,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

const [create, load, unload, terminate, temp] = ORIGIN_REQUESTS;
const c = await cluster();

describe('workers fetch their model and dataset from the router (MODELDOCK_K8S_STORE=router)', () => {
  let t: TestRouter;
  let storeDir: string;
  const apiKey = randomBytes(24).toString('hex');
  const auth = { authorization: `Bearer ${apiKey}` };
  const send = (body: unknown) => postJson(`${t.url}/inference_router/`, body, auth);
  const pods = async (): Promise<V1Pod[]> =>
    (await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) }))
      .items;
  const served = async (file: string, status: string) => {
    const { values } = await t.router.metrics.workerStoreFiles.get();
    return values.find((v) => v.labels.file === file && v.labels.status === status)?.value ?? 0;
  };
  const job = (jobId: string, operation: string) => ({
    job_id: jobId,
    model: 'm-131',
    dataset: 'ds-550',
    operation_type: operation,
  });

  before(async () => {
    // A store of the router's own, so a test can change a file in it.
    storeDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-router-store-'));
    await cp(MODELS_DIR, path.join(storeDir, 'models'), { recursive: true });
    await cp(DATASETS_DIR, path.join(storeDir, 'datasets'), { recursive: true });
    const port = await freeBridgePort();
    const routerUrl = `http://${BRIDGE_ADDRESS}:${port}`;
    t = await startTestRouter({
      keys: { admin: apiKey },
      env: {
        MODELDOCK_HOST: BRIDGE_ADDRESS,
        MODELDOCK_PORT: String(port),
        MODELDOCK_RUNTIME: 'kubernetes',
        MODELDOCK_K8S_STORE: 'router',
        MODELDOCK_K8S_ROUTER_URL: routerUrl,
        MODELDOCK_MODELS_DIR: path.join(storeDir, 'models'),
        MODELDOCK_DATASETS_DIR: path.join(storeDir, 'datasets'),
      },
      runtime: (config) =>
        kubernetesRuntime(c, config.instance, {
          store: { type: 'router', url: config.kubernetes.routerUrl },
        }),
    });
    assert.equal(t.url, routerUrl);
  });
  after(async () => {
    await t?.stop();
    if (t) await removeInstancePods(c, [t.instance]);
    await t?.cleanup();
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  });

  it('creates a worker Pod with no store mounted, which loads its model from the router', async () => {
    const sent = await served('model.onnx', '200');
    const { status, body } = await send(create);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'ready');
    const [pod, ...others] = await pods();
    assert.equal(others.length, 0);
    const volumes = pod!.spec!.volumes ?? [];
    assert.deepEqual(
      volumes.filter((v) => v.hostPath || v.persistentVolumeClaim || v.nfs).map((v) => v.name),
      [],
      'no hostPath, claim or NFS volume',
    );
    const cache = volumes.find((v) => v.name === 'cache');
    assert.equal(cache?.emptyDir?.sizeLimit, String(2 * 1024 ** 3), 'a bounded emptyDir cache');
    const env = Object.fromEntries(pod!.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    assert.equal(env.MODELDOCK_STORE_URL, t.url);
    assert.equal(env.MODELDOCK_MODELS_DIR, undefined);
    assert.equal(await served('model.onnx', '200'), sent + 1, 'the model was fetched from the router');
  });

  it('lets a running worker’s secret in, and nothing else', async () => {
    const file = `${t.url}/worker-store/models/m-131/model.onnx`;
    const [pod] = await pods();
    const secret = secretOfPod(pod!)!;
    assert.ok(secret);
    const ok = await fetch(file, { headers: { [WORKER_SECRET_HEADER]: secret } });
    assert.equal(ok.status, 200);
    assert.deepEqual(
      Buffer.from(await ok.arrayBuffer()),
      await readFile(path.join(storeDir, 'models/m-131/model.onnx')),
    );
    const strangers: Record<string, string>[] = [
      {},
      auth,
      { [WORKER_SECRET_HEADER]: randomBytes(32).toString('base64url') },
    ];
    for (const headers of strangers) {
      const refused = await fetch(file, { headers });
      assert.equal(refused.status, 401, JSON.stringify(Object.keys(headers)));
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'unauthorized');
    }
  });

  it('runs the rest of the original requests verbatim; TEMP fetches the dataset', async () => {
    for (const [request, state] of [
      [load, 'ready'],
      [unload, 'unloaded'],
      [terminate, 'terminated'],
    ] as const) {
      const { status, body } = await send(request);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.state, state);
    }
    assert.equal((await pods()).length, 0);
    const records = await served('records.jsonl', '200');
    const { status, body } = await send(temp);
    assert.equal(status, 200, JSON.stringify(body).slice(0, 500));
    assert.equal(body.state, 'terminated');
    assert.ok(body.result.count > 0);
    assert.ok(body.result.accuracy > 0.9, `accuracy ${body.result.accuracy}`);
    assert.equal(await served('records.jsonl', '200'), records + 1, 'the dataset came from the router');
    assert.equal((await pods()).length, 0);
  });

  it('loads a model again in the same Pod from its cache, and fetches a changed file anew', async () => {
    const created = await send(job('b1', 'DEPLOY_CREATE'));
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const [pod] = await pods();
    const uid = pod!.metadata!.uid;
    const sent = await served('model.onnx', '200');
    const unchanged = await served('model.onnx', '304');
    assert.equal((await send(job('b1', 'DEPLOY_UNLOAD'))).body.state, 'unloaded');
    const reloaded = await send(job('b1', 'DEPLOY_LOAD'));
    assert.equal(reloaded.status, 200, JSON.stringify(reloaded.body));
    assert.equal(reloaded.body.state, 'ready');
    assert.equal(await served('model.onnx', '200'), sent, 'nothing downloaded again');
    assert.equal(await served('model.onnx', '304'), unchanged + 1, 'the router confirmed the cached copy');

    // A file changed in the router's store reaches the worker at its next load.
    const manifest = path.join(storeDir, 'models/m-131/model.json');
    const changed = { ...JSON.parse(await readFile(manifest, 'utf8')), description: 'changed in the store' };
    await writeFile(manifest, JSON.stringify(changed));
    const manifests = await served('model.json', '200');
    assert.equal((await send(job('b1', 'DEPLOY_UNLOAD'))).body.state, 'unloaded');
    assert.equal((await send(job('b1', 'DEPLOY_LOAD'))).body.state, 'ready');
    assert.equal(await served('model.json', '200'), manifests + 1);
    const metadata = await getJson(`${t.url}/v2/models/b1`, auth);
    assert.equal(metadata.status, 200, JSON.stringify(metadata.body));
    assert.equal(metadata.body.parameters.description, 'changed in the store');
    assert.equal((await pods())[0]!.metadata!.uid, uid, 'the same Pod throughout');
    assert.equal((await send(job('b1', 'TERMINATE'))).body.state, 'terminated');
  });
});
