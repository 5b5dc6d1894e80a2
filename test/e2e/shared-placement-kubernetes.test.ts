/**
 * Shared placement on Kubernetes (the real test cluster): two shared jobs are one Pod,
 * labelled as shared and as no job's; both answer inference through it; a worker
 * container killed through containerd takes both jobs, which the reconciler places again
 * and which answer again; terminating both closes the Pod once it hosts nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { DIGIT_INFER_BODY } from '../helpers/inference-load.js';
import {
  TEST_NAMESPACE,
  cluster,
  killWorkerContainer,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import { postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

const c = await cluster();

describe('shared placement on Kubernetes', { timeout: 300_000 }, () => {
  let t: TestRouter;
  const livePods = async () =>
    (
      await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) })
    ).items.filter((p) => !p.metadata!.deletionTimestamp);
  const create = (jobId: string) =>
    postJson(`${t.url}/inference_router/`, {
      job_id: jobId,
      model: 'm-131',
      dataset: 'ds-550',
      operation_type: 'DEPLOY_CREATE',
      placement: 'shared',
    });
  const infer = async (jobId: string) => {
    const answer = await postJson(`${t.url}/v2/models/${jobId}/infer`, DIGIT_INFER_BODY);
    assert.equal(answer.status, 200, `${jobId}: ${JSON.stringify(answer.body)}`);
  };

  before(async () => {
    t = await startTestRouter({
      runtime: (config) => kubernetesRuntime(c, config.instance),
      env: { MODELDOCK_SHARED_IDLE_MS: '1000', MODELDOCK_RESTART_BACKOFF_MS: '100' },
    });
  });
  after(async () => {
    await t?.stop();
    await removeInstancePods(c, [t.instance]);
    await t?.cleanup();
  });

  it('two jobs in one Pod; a killed worker takes both, both are placed again; the empty Pod closes', async () => {
    const first = await create('ks1');
    assert.equal(first.status, 200, JSON.stringify(first.body).slice(0, 500));
    const second = await create('ks2');
    assert.equal(second.status, 200, JSON.stringify(second.body).slice(0, 500));
    assert.equal(second.body.container_id, first.body.container_id, 'the same Pod');
    const pods = await livePods();
    assert.equal(pods.length, 1, 'one Pod for both jobs');
    const pod = pods[0]!;
    assert.equal(pod.metadata!.uid, first.body.container_id);
    assert.equal(pod.metadata!.labels!['modeldock.io/kind'], 'shared');
    assert.equal(pod.metadata!.labels!['modeldock.io/job'], undefined, 'no one job’s Pod');
    await infer('ks1');
    await infer('ks2');

    const servers = await t.store.listServers({ kind: 'job', states: ['ready'] });
    await killWorkerContainer(pod);
    // Both come back ready, each placed again (restarted once), on a running worker.
    for (const server of servers) {
      const deadline = performance.now() + 120_000;
      for (;;) {
        const now = (await t.store.getServer(server.serverId))!;
        if (now.state === 'ready' && now.restarts > 0) break;
        assert.ok(performance.now() < deadline, `${server.jobId} placed again within 2 minutes`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    await infer('ks1');
    await infer('ks2');
    for (const job of ['ks1', 'ks2']) {
      const live = (await t.store.listServers({ jobId: job, kind: 'job' })).filter(
        (s) => s.state !== 'terminated',
      );
      assert.equal(live.length, 1, `${job}: one server, not lost, not duplicated`);
    }

    for (const job of ['ks1', 'ks2']) {
      const terminated = await postJson(`${t.url}/v1/jobs/${job}/terminate`, {});
      assert.equal(terminated.status, 200, JSON.stringify(terminated.body).slice(0, 500));
    }
    const deadline = performance.now() + 60_000;
    while ((await livePods()).length > 0) {
      assert.ok(performance.now() < deadline, 'the empty shared Pod is closed within a minute');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
});
