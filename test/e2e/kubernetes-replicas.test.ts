/**
 * Replicas on Kubernetes (the real test cluster): a job of two replicas is two Pods,
 * each labelled with its job and its own server; inference is answered by both; one
 * TERMINATE removes both. Nothing assumes the Pods share a node: each replica is reached
 * at its own Pod IP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { DIGIT_INFER_BODY } from '../helpers/inference-load.js';
import { TEST_NAMESPACE, cluster, kubernetesRuntime, removeInstancePods } from '../helpers/kubernetes.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

const c = await cluster();

describe('replicas on Kubernetes', { timeout: 300_000 }, () => {
  let t: TestRouter;
  const pods = async () =>
    (await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) }))
      .items;

  before(async () => {
    t = await startTestRouter({ runtime: (config) => kubernetesRuntime(c, config.instance) });
  });
  after(async () => {
    await t?.stop();
    await removeInstancePods(c, [t.instance]);
    await t?.cleanup();
  });

  it('runs one Pod per replica, serves from both, and terminates both', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'k2',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 2, max: 2 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body).slice(0, 500));
    const servers = created.body.servers as { server_id: string; container_id: string; endpoint: string }[];
    assert.equal(servers.length, 2);
    const running = await pods();
    for (const server of servers) {
      const pod = running.find((p) => p.metadata!.uid === server.container_id);
      assert.ok(pod, `a Pod for ${server.server_id}`);
      assert.equal(pod.status!.phase, 'Running');
      assert.equal(pod.metadata!.labels!['modeldock.io/job'], 'k2');
      assert.equal(pod.metadata!.labels!['modeldock.io/server'], server.server_id);
      assert.equal(server.endpoint, `http://${pod.status!.podIP}:8000`, 'each replica at its own Pod IP');
    }
    for (let i = 0; i < 40; i++) {
      const answer = await postJson(`${t.url}/v2/models/k2/infer`, DIGIT_INFER_BODY);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    for (const server of servers) {
      const stats = await t.router.workers.modelJson<{ model_stats: { execution_count: number }[] }>(
        server.endpoint,
        '/v2/models/k2/stats',
      );
      assert.ok(stats.model_stats[0]!.execution_count > 0, `${server.server_id} answered requests`);
    }
    const job = await getJson(`${t.url}/v1/jobs/k2`);
    assert.deepEqual(job.body.replicas, { min: 2, max: 2, desired: 2, ready: 2, scale_target: null });
    const terminated = await postJson(`${t.url}/v1/jobs/k2/terminate`, {});
    assert.equal(terminated.status, 200);
    const left = (await pods()).filter(
      (p) => p.metadata!.labels!['modeldock.io/job'] === 'k2' && !p.metadata!.deletionTimestamp,
    );
    assert.deepEqual(left, [], 'both Pods are gone');
  });
});
