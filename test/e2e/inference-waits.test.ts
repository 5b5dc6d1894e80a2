/**
 * Requests that arrive while their job's server is not ready wait for it, on the real
 * engine: many concurrent requests for an unloaded job share one load on demand; a
 * request that waited MODELDOCK_LOAD_WAIT_MS gets a 503 with Retry-After while the load
 * goes on; after a worker dies, the next requests wait for the restarted worker
 * instead of failing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIGIT_INFER_BODY, allInferPaths } from '../helpers/inference-load.js';
import { getJson, postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';

const body = JSON.parse(DIGIT_INFER_BODY) as unknown;

async function create(t: TestRouter, job: string): Promise<string> {
  const created = await postJson(`${t.url}/v1/jobs`, { job_id: job, model: 'm-131', dataset: 'ds-550' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.server.server_id as string;
}

describe('inference waits for its job', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_RESTART_BACKOFF_MS: '50' } });
  });
  after(async () => {
    await t?.cleanup();
  });

  it('concurrent requests for an unloaded job all wait for one load on demand', async () => {
    await create(t, 'w1');
    assert.equal((await postJson(`${t.url}/v1/jobs/w1/unload`, {})).status, 200);
    const paths = allInferPaths('w1').map((target) => target.path);
    const answers = await Promise.all(
      Array.from({ length: 24 }, (_, i) => postJson(`${t.url}${paths[i % paths.length]}`, body)),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(24).fill(200),
    );
    const loads = (await getJson(`${t.url}/v1/operations?job_id=w1&type=DEPLOY_LOAD`)).body.operations;
    assert.equal(loads.filter((op: { reason: string }) => op.reason === 'on_demand').length, 1);
  });

  it('after a worker dies, the next requests wait for its restart', { timeout: 60_000 }, async () => {
    const serverId = await create(t, 'w2');
    assert.equal((await postJson(`${t.url}/v2/models/w2/infer`, body)).status, 200);
    const job = (await getJson(`${t.url}/v1/jobs/w2`)).body;
    await t.docker.getContainer(job.server.container_name).kill();
    // The request the dead worker had (or that raced its death) may get a 502; after
    // that, every request waits for the new worker: no 409 "failed", no second 502.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await postJson(`${t.url}/v2/models/w2/infer`, body)).status);
    const firstOk = statuses.indexOf(200);
    assert.ok(firstOk >= 0 && firstOk <= 1, statuses.join(','));
    assert.deepEqual(statuses.slice(firstOk), Array(statuses.length - firstOk).fill(200), statuses.join(','));
    if (firstOk === 1) assert.equal(statuses[0], 502);
    const current = await waitForServer(t.router, serverId, (s) => s.state === 'ready');
    assert.equal(current.restarts, 1);
  });
});

describe('MODELDOCK_LOAD_WAIT_MS', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_LOAD_WAIT_MS: '1' } });
  });
  after(async () => {
    await t?.cleanup();
  });

  it('answers 503 not_ready with Retry-After past the wait, and the load goes on', async () => {
    const serverId = await create(t, 'slow1');
    assert.equal((await postJson(`${t.url}/v1/jobs/slow1/unload`, {})).status, 200);
    await create(t, 'slow2');
    assert.equal((await postJson(`${t.url}/v1/jobs/slow2/unload`, {})).status, 200);
    const response = await fetch(`${t.url}/v2/models/slow1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: DIGIT_INFER_BODY,
    });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get('retry-after'), '1');
    // /v2 answers in the protocol's error form; /v1 carries the code.
    const answer = (await response.json()) as { error: string };
    assert.match(answer.error, /slow1 is not ready yet/);
    const viaV1 = await fetch(`${t.url}/v1/jobs/slow2/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: DIGIT_INFER_BODY,
    });
    assert.equal(viaV1.status, 503);
    assert.equal(viaV1.headers.get('retry-after'), '1');
    assert.equal(((await viaV1.json()) as { error: { code: string } }).error.code, 'not_ready');
    await waitForServer(t.router, serverId, (s) => s.state === 'ready');
    assert.equal((await postJson(`${t.url}/v2/models/slow1/infer`, body)).status, 200);
  });
});
