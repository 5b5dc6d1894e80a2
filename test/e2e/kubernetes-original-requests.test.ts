/**
 * The five requests of the original POC README, verbatim, to a real router whose
 * workers are Pods on the real test cluster (MODELDOCK_RUNTIME=kubernetes; the scenario:
 * original-requests.scenario.ts).
 */
import assert from 'node:assert/strict';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { TEST_NAMESPACE, cluster, kubernetesRuntime, removeInstancePods } from '../helpers/kubernetes.js';
import { getJson, startTestRouter, type TestRouter } from '../helpers/router.js';
import { runOriginalRequests } from './original-requests.scenario.js';

const c = await cluster();
const pods = async (t: TestRouter) =>
  (await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) }))
    .items;

runOriginalRequests('Kubernetes', {
  worker: 'Pod',
  start: () => startTestRouter({ runtime: (config) => kubernetesRuntime(c, config.instance) }),
  stop: async (t) => {
    await t.stop();
    await removeInstancePods(c, [t.instance]);
    await t.cleanup();
  },
  workerIds: async (t) => (await pods(t)).map((p) => p.metadata!.uid!),
  isRunning: async (t, answer) =>
    (await pods(t)).some((p) => p.metadata!.uid === answer.container_id && p.status!.phase === 'Running'),
  checkCreated: async (t, answer) => {
    const pod = (await pods(t)).find((p) => p.metadata!.uid === answer.container_id)!;
    assert.equal(pod.metadata!.name, answer.container_name);
    assert.equal(pod.status!.phase, 'Running');
    assert.equal(pod.metadata!.labels!['modeldock.io/job'], 'a1');
    assert.equal(pod.metadata!.labels!['modeldock.io/server'], 'inf-0001');
    assert.equal(pod.metadata!.labels!['modeldock.io/model'], 'm-131');
    assert.equal(pod.spec!.restartPolicy, 'Never');
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    const container = pod.spec!.containers[0]!;
    assert.equal(container.securityContext!.readOnlyRootFilesystem, true);
    assert.deepEqual(container.securityContext!.capabilities!.drop, ['ALL']);
    assert.equal(container.resources!.limits!.memory, String(1024 ** 3));
    const server = await getJson(`${t.url}/v1/servers/inf-0001`);
    assert.equal(server.body.endpoint, `http://${pod.status!.podIP}:8000`);
  },
});
