/**
 * The warm pool (MODELDOCK_WARM_POOL): DEPLOY_CREATE and TEMP take an already started
 * worker instead of starting a container; it gets the server's deterministic name, the
 * pool refills itself, the reconciler leaves pool workers and handed-over workers alone,
 * a router restart clears the old pool, and the job's container is found through the API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import {
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  uniqueInstance,
  waitForServer,
  type TestRouter,
} from '../helpers/router.js';

describe('warm pool', () => {
  const instance = uniqueInstance('pool');
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ instance, env: { MODELDOCK_WARM_POOL: '2' } });
    await t.router.lifecycle.pool.whenFull();
  });
  after(async () => {
    await t?.cleanup();
  });

  it('DEPLOY_CREATE takes a started worker: no container start in its steps', async () => {
    const pool = (await getJson(`${t.url}/v1/pool`)).body;
    assert.deepEqual(
      {
        size: pool.size,
        limit: pool.limit,
        bounded_by: pool.bounded_by,
        ready: pool.ready,
        filling: pool.filling,
      },
      { size: 2, limit: 2, bounded_by: null, ready: 2, filling: 0 },
      'without a memory budget the pool keeps its configured size',
    );
    assert.equal(pool.budget_free_bytes, null);
    const response = await postJson(`${t.url}/inference_router/`, ORIGIN_REQUESTS[0]);
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.equal(response.body.state, 'ready');
    assert.deepEqual(
      response.body.steps.map((s: { name: string }) => s.name),
      ['record', 'create', 'wait_ready', 'load'],
    );
    assert.equal(response.body.container_name, `${instance}-inf-0001`, 'the deterministic name');
    const info = await t.docker.getContainer(response.body.container_id).inspect();
    assert.equal(info.Name, `/${instance}-inf-0001`);
    assert.equal(info.Config.Labels[LABELS.kind], 'pool', 'found through the API, not by job label');
    // The job's container is what the API says it is.
    assert.equal((await getJson(`${t.url}/v1/jobs/a1`)).body.server.container_id, info.Id);
  });

  it('refills, and a reconcile pass removes neither pool workers nor handed-over ones', async () => {
    await t.router.lifecycle.pool.whenFull();
    const report = await postJson(`${t.url}/v1/reconcile`, {});
    assert.equal(report.body.orphansRemoved, 0);
    const containers = await instanceContainers(t.docker, instance);
    assert.equal(containers.length, 3, 'one job worker and two pool workers');
    assert.equal((await getJson(`${t.url}/v1/jobs/a1`)).body.state, 'ready');
  });

  it('TEMP takes one too and removes it after', async () => {
    const response = await postJson(`${t.url}/inference_router/`, ORIGIN_REQUESTS[4]);
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 300));
    assert.equal(response.body.result.correct, 527);
    assert.ok(!response.body.steps.some((s: { name: string }) => s.name === 'start'));
    await t.router.lifecycle.pool.whenFull();
    assert.equal((await instanceContainers(t.docker, instance)).length, 3);
  });

  it('a handed-over worker that dies is noticed by its name and restarted', async () => {
    const server = (await getJson(`${t.url}/v1/jobs/a1`)).body.server;
    const died = waitForServer(
      t.router,
      server.server_id,
      (s) => s.state === 'ready' && s.restarts === 1,
      60_000,
    );
    await t.docker.getContainer(server.container_id).kill({ signal: 'SIGKILL' });
    await died;
  });

  it('after a router restart the old pool is cleared and the job server adopted', async () => {
    const dataDir = t.dataDir;
    await t.stop();
    t = await startTestRouter({ instance, dataDir, env: { MODELDOCK_WARM_POOL: '1' } });
    await t.router.lifecycle.pool.whenFull();
    assert.equal((await getJson(`${t.url}/v1/jobs/a1`)).body.state, 'ready');
    const containers = await instanceContainers(t.docker, instance);
    assert.equal(containers.length, 2, 'the job worker and one fresh pool worker');
    const terminated = await postJson(`${t.url}/inference_router/`, ORIGIN_REQUESTS[3]);
    assert.equal(terminated.body.state, 'terminated');
  });
});
