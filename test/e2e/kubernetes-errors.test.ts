/**
 * What an operator gets wrong, on the real test cluster, each answered by one line that
 * names the fix (a RuntimeUnavailableError: 503 on an operation) and never a crash: no
 * cluster reachable, RBAC forbidding it, the namespace missing, the image not on the node.
 */
import { KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RuntimeUnavailableError } from '../../src/errors.js';
import { LABELS } from '../../src/runtime/runtime.js';
import {
  TEST_NAMESPACE,
  cluster,
  kubernetesRuntime,
  removeInstancePods,
  type TestCluster,
} from '../helpers/kubernetes.js';
import { postJson, startTestRouter, uniqueInstance, type TestRouter } from '../helpers/router.js';

const limits = { memoryBytes: 256 * 1024 ** 2, nanoCpus: 5e8, pids: 64 };

function oneLine(error: unknown, pattern: RegExp): true {
  assert.ok(error instanceof RuntimeUnavailableError, String(error));
  assert.match(error.message, pattern);
  assert.ok(!error.message.includes('\n'), 'one line');
  return true;
}

describe('Kubernetes runtime errors name their fix', () => {
  let c: TestCluster;
  const instance = uniqueInstance('kerr');
  let t: TestRouter | undefined;

  before(async () => {
    c = await cluster();
  });
  after(async () => {
    await t?.stop();
    await removeInstancePods(c, [instance]);
    await t?.cleanup();
    await c.kubectl([
      '-n',
      TEST_NAMESPACE,
      'delete',
      'serviceaccount',
      'modeldock-no-rights',
      '--ignore-not-found',
    ]);
  });

  it('no cluster reachable', async () => {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'gone', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'c', cluster: 'gone', user: 'u' }],
      currentContext: 'c',
    });
    await assert.rejects(kubernetesRuntime(c, instance, { config }).prepare(), (e) =>
      oneLine(
        e,
        /Kubernetes API at https:\/\/127\.0\.0\.1:1 does not answer .*start the cluster, or point KUBECONFIG/,
      ),
    );
  });

  it('RBAC forbids it', async () => {
    await c
      .kubectl(['-n', TEST_NAMESPACE, 'create', 'serviceaccount', 'modeldock-no-rights'])
      .catch(() => undefined);
    const token = await c.kubectl(['-n', TEST_NAMESPACE, 'create', 'token', 'modeldock-no-rights']);
    const config = new KubeConfig();
    const current = c.config.getCurrentCluster()!;
    config.loadFromOptions({
      clusters: [{ name: 'test', server: current.server, caFile: current.caFile }],
      users: [{ name: 'sa', token }],
      contexts: [{ name: 'c', cluster: 'test', user: 'sa' }],
      currentContext: 'c',
    });
    await assert.rejects(kubernetesRuntime(c, instance, { config }).prepare(), (e) =>
      oneLine(
        e,
        /RBAC forbids modeldock to list pods in namespace modeldock-test .*bind the Role of deploy\/kubernetes/,
      ),
    );
  });

  it('the namespace is missing', async () => {
    await assert.rejects(kubernetesRuntime(c, instance, { namespace: 'modeldock-absent' }).prepare(), (e) =>
      oneLine(e, /namespace modeldock-absent does not exist: kubectl create namespace modeldock-absent/),
    );
  });

  it('the image is not on the node: start fails with the fix, and DEPLOY_CREATE answers 503', async () => {
    const runtime = kubernetesRuntime(c, instance, { image: 'modeldock/absent:nope' });
    const name = `${instance}-inf-0099`;
    await runtime.create({ name, labels: { [LABELS.server]: 'inf-0099' }, limits });
    await assert.rejects(runtime.start(name), (e) =>
      oneLine(
        e,
        /worker image modeldock\/absent:nope is not on node modeldock-node .*ErrImageNeverPull.*import-image/,
      ),
    );
    await runtime.remove(name);

    t = await startTestRouter({
      instance,
      runtime: (config) => kubernetesRuntime(c, config.instance, { image: 'modeldock/absent:nope' }),
    });
    const response = await postJson(`${t.url}/inference_router/`, {
      job_id: 'e1',
      model: 'm-131',
      dataset: 'ds-550',
      operation_type: 'DEPLOY_CREATE',
    });
    assert.equal(response.status, 503, JSON.stringify(response.body));
    assert.match(response.body.error.message, /is not on node .*ErrImageNeverPull/);
  });
});
