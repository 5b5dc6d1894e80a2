/**
 * Quotas against exhaustion on a real router and engine: MODELDOCK_MAX_SERVERS refuses a
 * create or TEMP past the limit with 429 and creates nothing (warm-pool workers counted
 * apart); concurrent creations beyond MODELDOCK_CREATE_CONCURRENCY queue, and past
 * MODELDOCK_CREATE_QUEUE get 429.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import {
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  type TestRouter,
} from '../helpers/router.js';

const job = (id: string) => ({ job_id: id, model: 'm-131', dataset: 'ds-550' });

describe('quotas', () => {
  const routers: TestRouter[] = [];
  after(async () => {
    for (const router of routers) await router.cleanup();
  });

  it('refuses a create or TEMP past MODELDOCK_MAX_SERVERS with 429, creating nothing; pool workers apart', async () => {
    const t = await startTestRouter({ env: { MODELDOCK_MAX_SERVERS: '2', MODELDOCK_WARM_POOL: '1' } });
    routers.push(t);
    for (const id of ['q1', 'q2']) assert.equal((await postJson(`${t.url}/v1/jobs`, job(id))).status, 201);
    const before = (await instanceContainers(t.docker, t.instance)).map((c) => c.Id).sort();

    const refused = await postJson(`${t.url}/v1/jobs`, job('q3'));
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'quota_exceeded');
    assert.match(refused.body.error.message, /MODELDOCK_MAX_SERVERS=2/);
    const temp = await postJson(`${t.url}/inference_router/`, { ...job('q4'), operation_type: 'TEMP' });
    assert.equal(temp.status, 429);
    assert.match(temp.body.error.message, /MODELDOCK_MAX_SERVERS=2/);

    // Nothing was created: no job, server or operation record, no container beyond those already there.
    for (const id of ['q3', 'q4']) {
      assert.equal(await t.store.getJob(id), undefined);
      assert.equal((await t.store.listServers({ jobId: id })).length, 0);
      assert.equal((await t.store.listOperations({ jobId: id })).length, 0);
    }
    // A server may run in a renamed pool worker (labels stay as created), so servers are found by name.
    const serverNames = (await t.store.listServers({ states: ['ready'] })).map((s) => `/${s.workerName}`);
    assert.equal(serverNames.length, 2);
    const containers = await instanceContainers(t.docker, t.instance);
    assert.equal(containers.filter((c) => c.Names.some((n) => serverNames.includes(n))).length, 2);
    assert.ok(
      containers.every((c) => before.includes(c.Id) || c.Labels[LABELS.kind] === 'pool'),
      'only pool workers came after',
    );

    const limits = await getJson(`${t.url}/v1/limits`);
    assert.deepEqual(limits.body, {
      max_servers: 2,
      live_servers: 2,
      create_concurrency: 4,
      creating: 0,
      create_queue: 64,
      queued: 0,
      max_shared_jobs: 10_000,
      shared_jobs: 0,
      shared_workers: 0,
      // Request bodies held (MODELDOCK_REQUEST_MEMORY per budget): none now.
      request_memory: 64 * 1024 * 1024,
      inference_bytes_in_flight: 0,
      administration_bytes_in_flight: 0,
    });

    // Terminating one makes room again.
    assert.equal((await postJson(`${t.url}/v1/jobs/q1/terminate`, {})).status, 200);
    assert.equal((await postJson(`${t.url}/v1/jobs`, job('q3'))).status, 201);
  });

  it('queues concurrent creations beyond the engine’s parallelism and refuses past the queue', async () => {
    const t = await startTestRouter({
      env: { MODELDOCK_CREATE_CONCURRENCY: '1', MODELDOCK_CREATE_QUEUE: '1' },
    });
    routers.push(t);
    const answers = await Promise.all(['c1', 'c2', 'c3'].map((id) => postJson(`${t.url}/v1/jobs`, job(id))));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [201, 201, 429], JSON.stringify(answers.map((a) => a.body)));
    const refused = answers.find((a) => a.status === 429)!;
    assert.match(refused.body.error.message, /MODELDOCK_CREATE_QUEUE/);
    const jobOf = (a: (typeof answers)[number]) => a.body.server?.job_id as string | undefined;
    const created = answers.filter((a) => a.status === 201).map(jobOf);
    assert.equal((await instanceContainers(t.docker, t.instance)).length, created.length);
  });
});
