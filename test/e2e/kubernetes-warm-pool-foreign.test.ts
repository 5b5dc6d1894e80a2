/**
 * A warm pool of MLServers as Pods on the real test cluster (the scenario:
 * runtime-pool.scenario.ts): an idle server's Pod is hardened as every worker's, its
 * repository an empty memory-backed directory and the model store mounted read-only for
 * its guard's links.
 */
import assert from 'node:assert/strict';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import {
  TEST_NAMESPACE,
  cluster,
  importImages,
  killWorkerContainer,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import { MLSERVER_IMAGE } from '../helpers/paths.js';
import { startTestRouter, type TestRouter } from '../helpers/router.js';
import { POOL_ENV, runPoolScenario } from './runtime-pool.scenario.js';

const c = await cluster();
await importImages([MLSERVER_IMAGE]);
const env = { ...POOL_ENV, MODELDOCK_MLSERVER_IMAGE: MLSERVER_IMAGE };

const podOf = async (t: TestRouter, uid: string) =>
  (
    await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) })
  ).items.find((pod) => pod.metadata!.uid === uid);

runPoolScenario('Kubernetes', {
  // The lifecycle's own rules run on the process runtime (runtime-pool.test.ts).
  runtimeOnly: true,
  start: () => startTestRouter({ runtime: (config) => kubernetesRuntime(c, config.instance), env }),
  restart: async (t) => {
    await t.stop();
    return startTestRouter({
      instance: t.instance,
      dataDir: t.dataDir,
      runtime: (config) => kubernetesRuntime(c, config.instance),
      env,
    });
  },
  stop: async (t) => {
    await t.stop();
    await removeInstancePods(c, [t.instance]);
    await t.cleanup();
  },
  kill: async (t, name) => {
    const worker = await t.runtime.inspect(name);
    assert.ok(worker, `worker ${name} exists`);
    await killWorkerContainer((await podOf(t, worker.id))!);
  },
  checkPooled: async (t, worker) => {
    const pod = (await podOf(t, worker.id))!;
    const [container, ...others] = pod.spec!.containers;
    assert.equal(others.length, 0);
    assert.equal(container!.image, MLSERVER_IMAGE);
    assert.deepEqual(container!.command, ['node', '/app/guard.mjs']);
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.equal(container!.securityContext!.readOnlyRootFilesystem, true);
    assert.deepEqual(container!.securityContext!.capabilities!.drop, ['ALL']);
    const mounts = Object.fromEntries(container!.volumeMounts!.map((m) => [m.mountPath, m]));
    // The repository is an empty memory-backed directory; the store is read-only, as modeldock's worker sees it.
    const repository = pod.spec!.volumes!.find((v) => v.name === mounts['/repository']!.name)!;
    assert.deepEqual({ ...repository.emptyDir }, { medium: 'Memory', sizeLimit: '1Mi' });
    assert.equal(mounts['/models']!.readOnly, true);
    assert.equal(mounts['/datasets']!.readOnly, true);
    assert.deepEqual(
      container!.ports!.map((p) => p.containerPort),
      [8000],
    );
  },
});
