/**
 * The five requests of the original POC README, verbatim, to a real router whose
 * workers are Pods on the real test cluster (MODELDOCK_RUNTIME=kubernetes).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { TEST_NAMESPACE, cluster, kubernetesRuntime, removeInstancePods } from '../helpers/kubernetes.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

const [create, load, unload, terminate, temp] = ORIGIN_REQUESTS;
const c = await cluster();

describe('the original README requests, verbatim, on Kubernetes', () => {
  let t: TestRouter;
  const pods = async () =>
    (await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) }))
      .items;

  before(async () => {
    t = await startTestRouter({ runtime: (config) => kubernetesRuntime(c, config.instance) });
  });
  after(async () => {
    await t?.stop();
    if (t) await removeInstancePods(c, [t.instance]);
    await t?.cleanup();
  });

  it('1-1 DEPLOY_CREATE creates one labelled, hardened, ready Pod for job a1', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, create);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'ready');
    assert.equal(body.server_id, 'inf-0001');
    assert.equal(body.container_name, `${t.instance}-inf-0001`);
    assert.deepEqual(
      body.steps.map((s: { name: string }) => s.name),
      ['record', 'create', 'start', 'wait_ready', 'load'],
    );
    const [pod, ...others] = await pods();
    assert.equal(others.length, 0);
    assert.equal(pod!.metadata!.name, `${t.instance}-inf-0001`);
    assert.equal(pod!.metadata!.uid, body.container_id);
    assert.equal(pod!.status!.phase, 'Running');
    assert.equal(pod!.metadata!.labels!['modeldock.io/job'], 'a1');
    assert.equal(pod!.metadata!.labels!['modeldock.io/server'], 'inf-0001');
    assert.equal(pod!.spec!.restartPolicy, 'Never');
    assert.equal(pod!.spec!.automountServiceAccountToken, false);
    const container = pod!.spec!.containers[0]!;
    assert.equal(container.securityContext!.readOnlyRootFilesystem, true);
    assert.deepEqual(container.securityContext!.capabilities!.drop, ['ALL']);
    assert.equal(container.resources!.limits!.memory, String(1024 ** 3));
    assert.equal(
      body.endpoint ?? (await getJson(`${t.url}/v1/servers/inf-0001`)).body.endpoint,
      `http://${pod!.status!.podIP}:8000`,
    );
  });

  it('1-2 DEPLOY_LOAD with a made-up container_id acts on the job server', async () => {
    const before = (await pods()).map((p) => p.metadata!.uid);
    const { status, body } = await postJson(`${t.url}/inference_router/`, load);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'ready');
    assert.deepEqual(
      (await pods()).map((p) => p.metadata!.uid),
      before,
      'no Pod created or removed',
    );
  });

  it('1-3 DEPLOY_UNLOAD releases the model and keeps the Pod', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, unload);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'unloaded');
    const [pod] = await pods();
    assert.equal(pod!.status!.phase, 'Running');
    // Through the router's client: the worker answers only holders of its secret.
    const index = { body: await t.router.workers.index(`http://${pod!.status!.podIP}:8000`) };
    assert.equal(
      index.body.some((m: { name: string; state: string }) => m.name === 'a1' && m.state === 'READY'),
      false,
    );
  });

  it('1-4 TERMINATE deletes the Pod and keeps the record as history', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, terminate);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'terminated');
    assert.equal((await pods()).length, 0);
  });

  it('1-5 TEMP runs m-131 over ds-550 and leaves no Pod', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, temp);
    assert.equal(status, 200, JSON.stringify(body).slice(0, 500));
    assert.equal(body.state, 'terminated');
    assert.ok(body.result.count > 0);
    assert.ok(body.result.accuracy > 0.9, `accuracy ${body.result.accuracy}`);
    assert.equal((await pods()).length, 0);
    const ops = await getJson(`${t.url}/v1/operations?job_id=a1`);
    assert.deepEqual(
      ops.body.operations.map((o: { type: string; status: string }) => `${o.type}:${o.status}`),
      [
        'TEMP:succeeded',
        'TERMINATE:succeeded',
        'DEPLOY_UNLOAD:succeeded',
        'DEPLOY_LOAD:succeeded',
        'DEPLOY_CREATE:succeeded',
      ],
    );
  });
});
