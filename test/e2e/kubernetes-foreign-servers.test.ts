/**
 * Foreign servers as worker Pods on the real test cluster: the built-in `mlserver` and
 * `triton` entries run their images (`modeldock images mlserver|triton`, imported into the
 * node's containerd) with modeldock's guard in front, in Pods hardened as the worker's.
 * MLServer runs the scenario it runs on the process runtime and Docker
 * (runtime-mlserver.scenario.ts); Triton the original five requests on m-133, NVIDIA's
 * tritonclient through the router (HTTP and gRPC) against Triton called directly, a bad
 * tensor, a restarted router adopting its Pod, and its killed container healed by the
 * reconciler.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { LABELS, type WorkerInfo } from '../../src/runtime/runtime.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import {
  TEST_NAMESPACE,
  cluster,
  importImages,
  killWorkerContainer,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import { MLSERVER_IMAGE, TRITON_IMAGE } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { getJson, postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';
import {
  assertDeployedOn,
  assertLoadUnloadTerminate,
  assertRoutedAsDirect,
  assertTempAsTrained,
} from '../helpers/scratch-router.js';
import { assertBadTensorRefused, assertTritonclientAgrees } from '../helpers/triton.js';
import { runMlserverScenario } from './runtime-mlserver.scenario.js';

const c = await cluster();
await importImages([MLSERVER_IMAGE, TRITON_IMAGE]);

/** A router whose workers are Pods, with the foreign servers' images; `instance`/`dataDir`: a restart. */
function startOnCluster(grpcPort: number, restartOf?: TestRouter): Promise<TestRouter> {
  return startTestRouter({
    runtime: (config) => kubernetesRuntime(c, config.instance),
    env: {
      MODELDOCK_MLSERVER_IMAGE: MLSERVER_IMAGE,
      MODELDOCK_TRITON_IMAGE: TRITON_IMAGE,
      MODELDOCK_GRPC_PORT: String(grpcPort),
    },
    ...(restartOf ? { instance: restartOf.instance, dataDir: restartOf.dataDir } : {}),
  });
}

async function stopOnCluster(t: TestRouter): Promise<void> {
  await t.stop();
  await removeInstancePods(c, [t.instance]);
  await t.cleanup();
}

/** The Pods of a router's instance. */
async function podsOf(t: TestRouter): Promise<V1Pod[]> {
  return (
    await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) })
  ).items;
}

/**
 * The worker's Pod runs `image` with the guard in front of the server, hardened as
 * modeldock's worker Pods are, with the job's model alone as its repository (read-only);
 * `exec` names the exec directory its entry asks for, if any.
 */
async function assertForeignPod(
  t: TestRouter,
  worker: WorkerInfo,
  image: string,
  model: string,
  exec?: string,
) {
  const pod = (await podsOf(t)).find((p) => p.metadata!.uid === worker.id)!;
  assert.ok(pod, `the worker ${worker.name} is a Pod of this instance`);
  assert.equal(pod.status!.phase, 'Running');
  assert.equal(pod.metadata!.labels!['modeldock.io/job'], 'a1');
  assert.equal(pod.metadata!.labels!['modeldock.io/model'], model);
  assert.equal(pod.spec!.restartPolicy, 'Never');
  assert.equal(pod.spec!.automountServiceAccountToken, false);
  assert.equal(pod.spec!.securityContext!.runAsUser, 10001);
  const [container, ...others] = pod.spec!.containers;
  assert.equal(others.length, 0, 'one container: the guard and its server');
  assert.equal(container!.image, image);
  assert.deepEqual(container!.command, ['node', '/app/guard.mjs']);
  assert.equal(container!.securityContext!.readOnlyRootFilesystem, true);
  assert.equal(container!.securityContext!.allowPrivilegeEscalation, false);
  assert.deepEqual(container!.securityContext!.capabilities!.drop, ['ALL']);
  assert.equal(container!.resources!.limits!.memory, String(t.config.workerMemoryBytes));
  // The only port is the guard's; the server listens on the Pod's loopback.
  assert.deepEqual(
    container!.ports!.map((p) => p.containerPort),
    [8000],
  );
  assert.equal(worker.endpoint, `http://${pod.status!.podIP}:8000`);
  const mounts = Object.fromEntries(container!.volumeMounts!.map((m) => [m.mountPath, m]));
  assert.deepEqual(
    Object.keys(mounts).sort(),
    ['/datasets', ...(exec ? [exec] : []), '/repository/a1', '/tmp'].sort(),
  );
  assert.equal(mounts['/repository/a1']!.readOnly, true);
  const repository = pod.spec!.volumes!.find((v) => v.name === mounts['/repository/a1']!.name)!;
  assert.ok(repository.hostPath!.path.endsWith(`/models/${model}`), repository.hostPath!.path);
}

runMlserverScenario('Kubernetes', {
  start: (grpcPort) => startOnCluster(grpcPort),
  stop: stopOnCluster,
  checkCreated: (t, worker) => assertForeignPod(t, worker, MLSERVER_IMAGE, 'm-132'),
});

describe('Triton as a worker (Kubernetes)', { timeout: 300_000 }, () => {
  const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-133"'));
  let t: TestRouter;
  let grpcPort: number;
  const jobWorker = async () => (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;

  before(async () => {
    grpcPort = await freePort();
    t = await startOnCluster(grpcPort);
  });
  after(async () => {
    if (t) await stopOnCluster(t);
  });

  it('DEPLOY_CREATE runs the triton image in a hardened Pod and loads m-133; tritonclient gets through the router what Triton answers', async () => {
    const worker = await assertDeployedOn(t, requests[0]!, 'triton');
    await assertForeignPod(t, worker, TRITON_IMAGE, 'm-133', '/opt/triton-backends');
    // Triton's own gRPC port is on the Pod's loopback: the server called directly is its HTTP, through the guard.
    const direct = new URL(worker.endpoint!).host;
    await assertTritonclientAgrees(
      'a1',
      {
        routerBinary: `http-binary=${new URL(t.url).host}`,
        routerJson: `http-json=${new URL(t.url).host}`,
        routerGrpc: `grpc=127.0.0.1:${grpcPort}`,
        directBinary: `http-binary=${direct}`,
        directJson: `http-json=${direct}`,
      },
      `http-binary=${direct}`,
      t.runtime.workerSecret!(worker.endpoint!)!,
    );
  });

  it("a tensor that does not fit m-133 gets Triton's 400 through the router, and the job keeps serving", async () => {
    await assertBadTensorRefused(t);
  });

  it('a restarted router adopts the running Triton Pod: the job stays ready on the same Pod', async () => {
    const running = await jobWorker();
    await t.stop();
    t = await startOnCluster(grpcPort, t);
    const adopted = await jobWorker();
    assert.equal(adopted.id, running.id, 'the same Pod, not a new one');
    const job = await getJson(`${t.url}/v1/jobs/a1`);
    assert.equal(job.status, 200, JSON.stringify(job.body));
    assert.equal(job.body.state, 'ready');
    await assertRoutedAsDirect(t, adopted.endpoint!, 'a1', 3);
    assert.equal((await podsOf(t)).length, 1, 'adoption started no second Pod');
  });

  it('a killed Triton container is healed by the reconciler: a new Pod, the model loaded, inference answers', async () => {
    const victim = await jobWorker();
    const serverId = victim.labels[LABELS.server]!;
    const healed = waitForServer(
      t.router,
      serverId,
      (server) => server.state === 'ready' && server.workerId !== null && server.workerId !== victim.id,
      90_000,
    );
    await killWorkerContainer((await podsOf(t)).find((p) => p.metadata!.uid === victim.id)!);
    await healed;
    const [pod, ...others] = await podsOf(t);
    assert.equal(others.length, 0, 'exactly one Pod for a1');
    assert.notEqual(pod!.metadata!.uid, victim.id, 'a new Pod');
    const again = await jobWorker();
    await assertForeignPod(t, again, TRITON_IMAGE, 'm-133', '/opt/triton-backends');
    await assertRoutedAsDirect(t, again.endpoint!, 'a1', 4);
  });

  it("the Pod's memory is measured (the guard, Triton and m-133's stub); DEPLOY_UNLOAD unloads in place, measures, and the memory is back", async () => {
    const loaded = await jobWorker();
    const withModel = await t.runtime.stats(loaded.name);
    assert.ok(withModel, 'a foreign server Pod reports its CPU and memory');
    assert.equal(withModel.memoryLimitBytes, t.config.workerMemoryBytes);
    assert.ok(withModel.cpuSeconds > 0);
    const response = await postJson(`${t.url}/inference_router/`, requests[2]!);
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
    assert.equal(response.body.state, 'unloaded');
    // unloadMemory "frees": the repository extension's unload, then the check of the
    // memory, which found it back (no stop, no start: the same Pod, no warning).
    assert.deepEqual(
      response.body.steps.map((step: { name: string }) => step.name),
      ['drain', 'unload', 'measure_memory'],
    );
    const kept = (response.body.warnings as string[]).filter((w) => /after the unload/.test(w));
    assert.deepEqual(kept, [], "the memory check found the model's memory back");
    const unloaded = await jobWorker();
    assert.equal(unloaded.id, loaded.id, 'the same Pod, the model unloaded in it');
    const withoutModel = (await t.runtime.stats(unloaded.name))!;
    const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
    // m-133's Python-backend stub alone holds about 40 MiB (docs/runtimes.md).
    assert.ok(
      withoutModel.memoryBytes < withModel.memoryBytes - 16 * 2 ** 20,
      `memory back after the unload: ${mib(withModel.memoryBytes)} loaded, ${mib(withoutModel.memoryBytes)} after`,
    );
  });

  it('DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE drive Triton through the repository extension; nothing is left', async () => {
    await assertLoadUnloadTerminate(t, requests.slice(1, 4));
    assert.deepEqual(await podsOf(t), []);
  });

  it('TEMP runs ds-550 through its infer calls on a Triton Pod and reports the accuracy training measured', async () => {
    await assertTempAsTrained(t, requests[4]!, 'm-133');
    assert.deepEqual(await podsOf(t), []);
  });
});

describe('a foreign server on Kubernetes where it cannot run', { timeout: 60_000 }, () => {
  const create = ORIGIN_REQUESTS[0].replace('"m-131"', '"m-132"');

  it('without its image on the node, DEPLOY_CREATE answers 503 naming the image and the fix', async () => {
    const t = await startTestRouter({
      runtime: (config) => kubernetesRuntime(c, config.instance),
      env: { MODELDOCK_MLSERVER_IMAGE: 'modeldock/mlserver:absent-for-a-test' },
    });
    try {
      const response = await postJson(`${t.url}/inference_router/`, create);
      assert.equal(response.status, 503, JSON.stringify(response.body));
      assert.match(
        response.body.error.message,
        /modeldock\/mlserver:absent-for-a-test is not on node .*import-image/,
      );
    } finally {
      await stopOnCluster(t);
    }
  });
});
