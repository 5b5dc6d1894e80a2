/**
 * A worker Pod reaps the orphans of its processes (the real test cluster). In a Pod of
 * its own PID namespace the worker (or a foreign server's guard) is PID 1, and Node.js
 * never waits for a child it did not start: every orphan a server leaves behind (MLServer
 * and Triton start processes of their own) would stay a zombie for the Pod's life. The
 * Pod shares its PID namespace with its sandbox instead, whose init reaps them, as
 * Docker's `--init` does for a worker container.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import {
  TEST_NAMESPACE,
  cluster,
  execInPod,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import { postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

const c = await cluster();
const JOB = { job_id: 'z1', model: 'm-131', dataset: 'ds-550' };

/** Started in the Pod by a process that exits at once: orphaned, then exits itself. */
const ORPHAN = `const child = require('child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 200)'], { detached: true, stdio: 'ignore' }); child.unref(); console.log(child.pid)`;

/** Waits (up to 30 s) until the process is gone or a zombie, and says which. */
const FATE = (pid: string) => `
  const fs = require('fs');
  const deadline = Date.now() + 30000;
  (function look() {
    let state;
    try { state = fs.readFileSync('/proc/${pid}/status', 'utf8').match(/^State:\\s*(\\S)/m)[1]; } catch { state = 'gone'; }
    if (state === 'gone' || state === 'Z' || Date.now() > deadline) return console.log(state);
    setTimeout(look, 50);
  })();`;

describe('worker Pods reap orphans', { timeout: 300_000 }, () => {
  let t: TestRouter;

  before(async () => {
    t = await startTestRouter({ runtime: (config) => kubernetesRuntime(c, config.instance) });
  });
  after(async () => {
    await t?.stop();
    await removeInstancePods(c, [t.instance]);
    await t?.cleanup();
  });

  it('an orphaned process that exits is reaped, not left a zombie', async () => {
    const created = await postJson(`${t.url}/inference_router/`, { ...JOB, operation_type: 'DEPLOY_CREATE' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const [pod] = (
      await c.core.listNamespacedPod({ namespace: TEST_NAMESPACE, labelSelector: ownerSelector(t.instance) })
    ).items;
    assert.ok(pod, 'the job has a Pod');
    const pid = await execInPod(pod, ['node', '-e', ORPHAN]);
    assert.match(pid, /^\d+$/);
    assert.equal(await execInPod(pod, ['node', '-e', FATE(pid)]), 'gone', `process ${pid} was left a zombie`);
    const terminated = await postJson(`${t.url}/inference_router/`, { ...JOB, operation_type: 'TERMINATE' });
    assert.equal(terminated.status, 200);
  });
});
