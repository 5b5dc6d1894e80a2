/**
 * The store and the engine never drift: a worker killed by hand is noticed at once and
 * restarted, a container removed by hand is recreated, an orphan with our labels is
 * removed, and a restart budget ends in `failed` with the reason.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import {
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  waitForServer,
  type TestRouter,
} from '../helpers/router.js';

async function createJob(t: TestRouter, jobId: string) {
  const response = await postJson(`${t.url}/v1/jobs`, { job_id: jobId, model: 'm-131', dataset: 'ds-550' });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.server as { server_id: string; container_id: string; container_name: string };
}

/** Far beyond any test here: the periodic pass never runs during one. */
const PERIODIC_PASS_MS = 30 * 60_000;
/** Generous for a busy shared machine, and still far below the periodic pass. */
const NOTICE_BOUND_MS = 30_000;

describe('reconciler against real faults', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({
      env: {
        MODELDOCK_RESTART_LIMIT: '1',
        MODELDOCK_RESTART_BACKOFF_MS: '100',
        // No periodic pass while a test runs: what is noticed is noticed from the engine's
        // events, so the bounds below can be generous on a busy machine and still fail
        // when events are missed.
        MODELDOCK_RECONCILE_INTERVAL_MS: String(PERIODIC_PASS_MS),
      },
    });
  });
  after(async () => {
    await t?.cleanup();
  });

  it('a worker killed with docker kill is noticed from the engine event and restarted with its model', async (ctx) => {
    const server = await createJob(t, 'k1');
    const failed = waitForServer(t.router, server.server_id, (s) => s.state === 'failed', NOTICE_BOUND_MS);
    const killedAt = Date.now();
    await t.docker.getContainer(server.container_id).kill({ signal: 'SIGKILL' });
    const marked = await failed;
    ctx.diagnostic(`worker death noticed after ${Date.now() - killedAt} ms`);
    assert.match(marked.reason ?? '', /exited with code 137/);

    const ready = await waitForServer(t.router, server.server_id, (s) => s.state === 'ready', 30_000);
    assert.equal(ready.restarts, 1);
    const ops = (await getJson(`${t.url}/v1/operations?job_id=k1&type=DEPLOY_LOAD`)).body.operations;
    assert.equal(ops[0].reason, 'restart');
    assert.equal(ops[0].status, 'succeeded');
    // The model really serves again.
    // Through the router's client: the worker answers only holders of its secret.
    const index = { body: await t.router.workers.index(ready.endpoint!) };
    assert.ok(
      index.body.some((m: { name: string; state: string }) => m.name === 'k1' && m.state === 'READY'),
    );
  });

  it('past the restart limit the server stays failed with the reason', async () => {
    const current = (await getJson(`${t.url}/v1/jobs/k1`)).body.server;
    const failed = waitForServer(
      t.router,
      current.server_id,
      (s) => s.state === 'failed' && /restart limit/.test(s.reason ?? ''),
      NOTICE_BOUND_MS,
    );
    await t.docker.getContainer(current.container_id).kill({ signal: 'SIGKILL' });
    const final = await failed;
    assert.match(final.reason!, /exited with code 137; restart limit \(1\) reached/);
    // Inference is refused with the reason instead of hanging.
    const infer = await postJson(`${t.url}/v1/jobs/k1/infer`, {
      inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [0] }],
    });
    assert.equal(infer.status, 409);
    assert.match(infer.body.error.message, /restart limit/);
    // DEPLOY_LOAD heals it.
    const healed = await postJson(`${t.url}/v1/jobs/k1/load`, {});
    assert.equal(healed.status, 200, JSON.stringify(healed.body));
    assert.equal(healed.body.server.state, 'ready');
  });

  it('a container removed by hand is marked vanished and recreated by the restart policy', async () => {
    const server = await createJob(t, 'r1');
    const marked = waitForServer(t.router, server.server_id, (s) => s.state === 'failed', NOTICE_BOUND_MS);
    await t.docker.getContainer(server.container_id).remove({ force: true });
    const failed = await marked;
    assert.match(failed.reason ?? '', /container vanished/);
    const healed = await waitForServer(t.router, server.server_id, (s) => s.state === 'ready', 30_000);
    assert.equal(healed.restarts, 1);
    assert.notEqual(healed.workerId, server.container_id, 'in a new container');
    const containers = await instanceContainers(t.docker, t.instance);
    assert.equal(containers.filter((c) => c.Labels[LABELS.job] === 'r1').length, 1);
  });

  it('an orphan container with our labels and no record that never started is removed, saying why', async () => {
    const orphan = await t.docker.createContainer({
      name: `${t.instance}-inf-9999`,
      Image: t.config.workerImage,
      Labels: {
        [LABELS.managed]: 'true',
        [LABELS.instance]: t.instance,
        [LABELS.server]: 'inf-9999',
        [LABELS.job]: 'ghost',
        [LABELS.model]: 'm-131',
      },
      HostConfig: { ReadonlyRootfs: true },
    });
    const report = await postJson(`${t.url}/v1/reconcile`, {});
    assert.equal(report.status, 200);
    assert.ok(report.body.orphansRemoved >= 1, JSON.stringify(report.body));
    await assert.rejects(orphan.inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
    // A container that never started cannot be adopted; the record of its removal says so.
    const [removal] = await t.store.listOperations({ jobId: 'ghost', type: 'RECONCILE' });
    assert.equal(removal?.reason, 'orphan_removed');
    assert.match(removal?.warnings.join('\n') ?? '', /inf-9999.*not running \(created\)/);
  });
});
