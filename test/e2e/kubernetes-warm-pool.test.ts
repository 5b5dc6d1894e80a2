/**
 * The warm pool on Kubernetes: a pre-started Pod is handed over by relabelling (a Pod
 * cannot be renamed). DEPLOY_CREATE takes it without starting a Pod, the worker is then
 * found under the server's deterministic name, a crash of it is noticed by that name and
 * healed, and TEMP takes one too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NAME_LABEL, ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import {
  TEST_NAMESPACE,
  cluster,
  killWorkerContainer,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import {
  getJson,
  postJson,
  startTestRouter,
  uniqueInstance,
  waitForServer,
  type TestRouter,
} from '../helpers/router.js';

const c = await cluster();

describe('warm pool on Kubernetes', () => {
  const instance = uniqueInstance('kpool');
  let t: TestRouter;
  const pods = async () =>
    (await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(instance) }))
      .items;

  before(async () => {
    t = await startTestRouter({
      instance,
      env: { MODELDOCK_WARM_POOL: '1' },
      runtime: (config) => kubernetesRuntime(c, config.instance),
    });
    await t.router.lifecycle.pool.whenFull();
  });
  after(async () => {
    await t?.stop();
    await removeInstancePods(c, [instance]);
    await t?.cleanup();
  });

  it('DEPLOY_CREATE takes the pool Pod by relabelling it: no Pod start in its steps', async () => {
    const [poolPod] = await pods();
    assert.match(poolPod!.metadata!.name!, new RegExp(`^${instance}-pool-`));
    const response = await postJson(`${t.url}/inference_router/`, ORIGIN_REQUESTS[0]);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(
      response.body.steps.map((s: { name: string }) => s.name),
      ['record', 'create', 'wait_ready', 'load'],
    );
    assert.equal(response.body.container_name, `${instance}-inf-0001`);
    assert.equal(response.body.container_id, poolPod!.metadata!.uid, 'the same Pod');
    const handed = (await pods()).find((p) => p.metadata!.uid === poolPod!.metadata!.uid)!;
    assert.equal(handed.metadata!.labels![NAME_LABEL], `${instance}-inf-0001`);
    assert.equal(handed.metadata!.name, poolPod!.metadata!.name, 'a Pod keeps the name it was created under');
    await t.router.lifecycle.pool.whenFull();
    assert.equal((await pods()).length, 2, 'the job worker and a new pool worker');
  });

  it('a handed-over worker that dies is noticed by its name and restarted', async () => {
    const server = (await getJson(`${t.url}/v1/jobs/a1`)).body.server;
    const restarted = waitForServer(
      t.router,
      server.server_id,
      (s) => s.state === 'ready' && s.restarts === 1,
      60_000,
    );
    const pod = (await pods()).find((p) => p.metadata!.uid === server.container_id)!;
    await killWorkerContainer(pod);
    await restarted;
    const job = (await getJson(`${t.url}/v1/jobs/a1`)).body;
    assert.equal(job.state, 'ready', JSON.stringify(job));
    const infer = await postJson(`${t.url}/v2/models/a1/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: new Array(64).fill(0) }],
    });
    assert.equal(infer.status, 200, JSON.stringify(infer.body));
  });

  it('TEMP takes a pool Pod too and leaves only the job worker and the refilled pool', async () => {
    const response = await postJson(`${t.url}/inference_router/`, ORIGIN_REQUESTS[4]);
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 300));
    assert.equal(response.body.result.correct, 527);
    assert.ok(!response.body.steps.some((s: { name: string }) => s.name === 'start'));
    await t.router.lifecycle.pool.whenFull();
    assert.equal((await pods()).length, 2);
    const terminated = await postJson(`${t.url}/inference_router/`, ORIGIN_REQUESTS[3]);
    assert.equal(terminated.body.state, 'terminated');
  });
});
