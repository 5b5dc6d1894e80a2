/**
 * The Pod watch across a real apiserver restart, on the real test cluster: with the
 * runtime's event stream open, the apiserver is stopped, a worker's container is killed
 * through the node's containerd while it is down (the kubelet can only report the death
 * once the apiserver is back), and the apiserver is started again. The death must
 * arrive as a `die` event (the watch resumes from its resourceVersion, or relists and
 * compares), and the router's reconciler — whose periodic pass is off here, so only the
 * event can move it — restarts the worker: exactly one running Pod per job afterwards.
 *
 * The apiserver is started again whatever happens (after()), and the node is Ready
 * before the file ends, so the test files after this one find a healthy cluster.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { NAME_LABEL, ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import type { RuntimeEvent } from '../../src/runtime/runtime.js';
import {
  TEST_NAMESPACE,
  cluster,
  killWorkerContainer,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import { DIGITS } from '../helpers/fixtures.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';

const run = promisify(execFile);
const c = await cluster();

async function apiserver(command: 'stop-apiserver' | 'start-apiserver'): Promise<void> {
  await run('bash', [path.join(REPO_ROOT, 'scripts/kubernetes.sh'), command], { timeout: 180_000 });
}

/** The events of one stream, and a way to wait for the first that matches. */
function collect(stream: AsyncIterable<RuntimeEvent>) {
  const seen: RuntimeEvent[] = [];
  const waiters = new Set<() => void>();
  const done = (async () => {
    for await (const event of stream) {
      seen.push(event);
      for (const wake of waiters) wake();
    }
  })();
  const next = (match: (event: RuntimeEvent) => boolean, what: string, timeoutMs: number) =>
    new Promise<RuntimeEvent>((resolve, reject) => {
      const check = () => {
        const found = seen.find(match);
        if (!found) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `no ${what} event within ${timeoutMs} ms; seen: ${seen.map((e) => `${e.type}:${e.name}`).join(', ')}`,
          ),
        );
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { seen, next, done };
}

describe('the Pod watch survives an apiserver restart', () => {
  let t: TestRouter;
  const events = new AbortController();
  const job = (jobId: string, operation: string) => ({
    job_id: jobId,
    model: 'm-131',
    dataset: 'ds-550',
    operation_type: operation,
  });
  const podsOf = async (jobId: string): Promise<V1Pod[]> =>
    (
      await c.core.listNamespacedPod({
        namespace: TEST_NAMESPACE,
        labelSelector: `${ownerSelector(t.instance)},modeldock.io/job=${jobId}`,
      })
    ).items;

  before(async () => {
    t = await startTestRouter({
      // No periodic pass: only the watch's events can make the reconciler act.
      env: { MODELDOCK_RECONCILE_INTERVAL_MS: String(3_600_000) },
      runtime: (config) => kubernetesRuntime(c, config.instance),
    });
  });
  after(async () => {
    events.abort();
    // Whatever happened above, the cluster is whole again for the files after this one.
    await apiserver('start-apiserver');
    await c.kubectl(['wait', '--for=condition=Ready', 'node', '--all', '--timeout=120s'], 150_000);
    await t?.stop();
    if (t) await removeInstancePods(c, [t.instance]);
    await t?.cleanup();
  });

  it('delivers a worker death that happened while the apiserver was down, and the reconciler heals', async () => {
    const first = await postJson(`${t.url}/inference_router/`, job('w1', 'DEPLOY_CREATE'));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const [victim] = await podsOf('w1');
    const workerName = victim!.metadata!.labels![NAME_LABEL]!;

    // A stream of the runtime's own, beside the reconciler's. A second job's Pod shows
    // that it is watching (its first list is the starting point, not an event).
    const stream = collect(t.runtime.events(events.signal));
    const second = await postJson(`${t.url}/inference_router/`, job('w2', 'DEPLOY_CREATE'));
    assert.equal(second.status, 200, JSON.stringify(second.body));
    await stream.next((e) => e.type === 'start' && e.labels['modeldock.job'] === 'w2', 'start of w2', 30_000);

    await apiserver('stop-apiserver');
    // The apiserver is gone: the kubelet sees the container die but cannot say so yet.
    await killWorkerContainer(victim!);
    await apiserver('start-apiserver');

    const died = await stream.next(
      (e) => e.type === 'die' && e.name === workerName,
      `die of ${workerName}`,
      90_000,
    );
    assert.equal(died.exitCode, 137, 'SIGKILL');

    // The reconciler got the same event and restarted the worker: a new Pod, the only one.
    const healed = await waitForServer(
      t.router,
      'inf-0001',
      (s) => s.state === 'ready' && s.restarts >= 1,
      90_000,
    );
    assert.equal(healed.jobId, 'w1');
    const [pod, ...others] = await podsOf('w1');
    assert.equal(others.length, 0, 'exactly one Pod for w1');
    assert.notEqual(pod!.metadata!.uid, victim!.metadata!.uid, 'a new Pod');
    assert.equal(pod!.status!.phase, 'Running');
    assert.equal((await podsOf('w2')).length, 1, 'exactly one Pod for w2');
    const answered = await postJson(`${t.url}/v2/models/w1/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
    });
    assert.equal(answered.status, 200, JSON.stringify(answered.body));
    assert.ok(answered.body.outputs.length > 0);
  });
});
