/**
 * Foreign servers as worker Pods with the router's store (MODELDOCK_K8S_STORE=router), as
 * the shipped deployment (deploy/kubernetes/router.yaml) runs them, on the real test
 * cluster: nothing of the store is mounted in the Pod (no hostPath, no claim); the guard
 * fetches the model's directory from the router into the Pod's repository (an emptyDir)
 * before it starts the server, or, for a pooled server, when it is handed a job.
 * MLServer runs the scenario it runs on every runtime (runtime-mlserver.scenario.ts: the
 * original five requests, tritonclient through the router); Triton a cold DEPLOY_CREATE
 * of m-133 whose predictions through the router (tritonclient, HTTP and gRPC) are
 * Triton's own, beside a pooled MLServer handed a job.
 *
 * The test calls the router on loopback (no key asked); Pods reach it through a relay on
 * the pod bridge (helpers/kubernetes.ts: bridgeRelay). The store endpoint's own refusals
 * (a stranger's secret, an API key) are tested with a router on the bridge itself, in
 * kubernetes-router-store.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { LABELS, type WorkerInfo } from '../../src/runtime/runtime.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import {
  TEST_NAMESPACE,
  bridgeRelay,
  cluster,
  importImages,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import { MLSERVER_IMAGE, TRITON_IMAGE } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { postJson, startTestRouter, type TestRouter } from '../helpers/router.js';
import { assertDeployedOn, assertRoutedAsDirect } from '../helpers/scratch-router.js';
import { assertTritonclientAgrees } from '../helpers/triton.js';
import { runMlserverScenario } from './runtime-mlserver.scenario.js';

const c = await cluster();
await importImages([MLSERVER_IMAGE, TRITON_IMAGE]);

/** Each router's relay, closed with it. */
const relays = new Map<TestRouter, Awaited<ReturnType<typeof bridgeRelay>>>();

/** A router whose workers are Pods fetching from its store; `env` more of its configuration. */
async function startWithRouterStore(grpcPort: number, env: Record<string, string> = {}): Promise<TestRouter> {
  const relay = await bridgeRelay();
  const t = await startTestRouter({
    runtime: (config) => kubernetesRuntime(c, config.instance, { store: { type: 'router', url: relay.url } }),
    env: {
      MODELDOCK_MLSERVER_IMAGE: MLSERVER_IMAGE,
      MODELDOCK_TRITON_IMAGE: TRITON_IMAGE,
      MODELDOCK_GRPC_PORT: String(grpcPort),
      ...env,
    },
  }).catch(async (error: unknown) => {
    await relay.close();
    throw error;
  });
  relay.to(Number(new URL(t.url).port));
  relays.set(t, relay);
  return t;
}

async function stopWithRouterStore(t: TestRouter): Promise<void> {
  await t.stop();
  await removeInstancePods(c, [t.instance]);
  await t.cleanup();
  await relays.get(t)?.close();
}

async function podOf(t: TestRouter, worker: WorkerInfo): Promise<V1Pod> {
  const pods = await c.core.listNamespacedPod({
    namespace: TEST_NAMESPACE,
    labelSelector: ownerSelector(t.instance),
  });
  const pod = pods.items.find((p) => p.metadata!.uid === worker.id);
  assert.ok(pod, `the worker ${worker.name} is a Pod of this instance`);
  return pod;
}

/**
 * The foreign server's Pod mounts nothing of the store: its repository is an emptyDir on
 * the node's disk, bounded, which its guard fills from the router (`exec`: the exec
 * directory its entry asks for).
 */
async function assertFetchingPod(t: TestRouter, worker: WorkerInfo, image: string, exec?: string) {
  const pod = await podOf(t, worker);
  const [container, ...others] = pod.spec!.containers;
  assert.equal(others.length, 0, 'one container: the guard and its server');
  assert.equal(container!.image, image);
  assert.deepEqual(container!.command, ['node', '/app/guard.mjs']);
  const volumes = pod.spec!.volumes ?? [];
  assert.deepEqual(
    volumes.filter((v) => v.hostPath || v.persistentVolumeClaim || v.nfs).map((v) => v.name),
    [],
    'no hostPath, claim or NFS volume',
  );
  const mounts = Object.fromEntries(container!.volumeMounts!.map((m) => [m.mountPath, m]));
  assert.deepEqual(Object.keys(mounts).sort(), ['/repository', '/tmp', ...(exec ? [exec] : [])].sort());
  const repository = volumes.find((v) => v.name === mounts['/repository']!.name)!;
  assert.deepEqual({ ...repository.emptyDir }, { sizeLimit: String(2 * t.config.workerMemoryBytes) });
  const env = Object.fromEntries(container!.env!.map((e) => [e.name, e.value]));
  assert.equal(env.MODELDOCK_GUARD_STORE_URL, relays.get(t)!.url);
}

runMlserverScenario('Kubernetes, router store', {
  start: (grpcPort) => startWithRouterStore(grpcPort),
  stop: stopWithRouterStore,
  checkCreated: (t, worker) => assertFetchingPod(t, worker, MLSERVER_IMAGE),
});

describe('Triton, and a pooled MLServer, with the router store (Kubernetes)', { timeout: 300_000 }, () => {
  const [create, , , terminate] = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-133"'));
  let t: TestRouter;
  let grpcPort: number;

  before(async () => {
    grpcPort = await freePort();
    t = await startWithRouterStore(grpcPort, { MODELDOCK_WARM_POOL: 'mlserver=1' });
  });
  after(async () => {
    if (t) await stopWithRouterStore(t);
  });

  it('DEPLOY_CREATE starts Triton on m-133 fetched from the router; tritonclient gets through the router what Triton answers', async () => {
    const worker = await assertDeployedOn(t, create!, 'triton');
    await assertFetchingPod(t, worker, TRITON_IMAGE, '/opt/triton-backends');
    const direct = new URL(worker.endpoint!).host;
    await assertTritonclientAgrees(
      'a1',
      {
        routerBinary: `http-binary=${new URL(t.url).host}`,
        routerJson: `http-json=${new URL(t.url).host}`,
        routerGrpc: `grpc=127.0.0.1:${grpcPort}`,
        directBinary: `http-binary=${direct}`,
      },
      `http-binary=${direct}`,
      t.runtime.workerSecret!(worker.endpoint!)!,
    );
  });

  it('a pooled MLServer handed a job fetches its model from the router, then loads and serves it', async () => {
    await t.router.lifecycle.pool.whenFull();
    const idle = (await t.runtime.list()).find((w) => w.labels[LABELS.kind] === 'pool')!;
    assert.ok(idle, 'an idle pooled MLServer');
    await assertFetchingPod(t, idle, MLSERVER_IMAGE);
    const response = await postJson(
      `${t.url}/inference_router/`,
      create!.replace('"m-133"', '"m-132"').replace('"a1"', '"b1"'),
    );
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
    assert.deepEqual(
      response.body.steps.map((s: { name: string }) => s.name),
      ['record', 'create', 'wait_ready', 'link', 'load'],
    );
    const job = (await t.runtime.list()).find((w) => w.name === response.body.container_name)!;
    assert.equal(job.id, idle.id, 'the pooled server itself');
    for (const i of [0, 1, 2]) await assertRoutedAsDirect(t, job.endpoint!, 'b1', i);
  });

  it('TERMINATE ends both jobs', async () => {
    for (const body of [terminate!, terminate!.replace('"m-133"', '"m-132"').replace('"a1"', '"b1"')]) {
      const response = await postJson(`${t.url}/inference_router/`, body);
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
      assert.equal(response.body.state, 'terminated');
    }
  });
});
