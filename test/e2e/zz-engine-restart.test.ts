/**
 * The Docker engine goes away while servers run (dockerd stopped, then started again).
 * While it is away, reads keep working from the store and operations answer 503
 * `runtime_unavailable`; when it is back, the reconciler resubscribes, notices the
 * workers that died with the engine and restarts them with their models.
 *
 * (Named zz- so it runs last: it restarts the engine every other test uses.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { READY_CHECK_MS } from '../../src/api/readiness.js';
import { startEngine, stopEngine } from '../helpers/engine.js';
import { getJson, postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';

describe('engine restarted while servers run', () => {
  let t: TestRouter;
  let engineArgs: string[] | undefined;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_RESTART_LIMIT: '3', MODELDOCK_RESTART_BACKOFF_MS: '200' } });
  });
  after(async () => {
    if (engineArgs) await startEngine(engineArgs).catch(() => undefined);
    await t?.cleanup();
  });

  it('reads work and operations answer 503 while away; servers come back after', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'e1', model: 'm-131', dataset: 'ds-550' });
    assert.equal(created.status, 201);
    const serverId = created.body.server.server_id;

    engineArgs = await stopEngine();
    const jobs = await getJson(`${t.url}/v1/jobs`);
    assert.equal(jobs.status, 200, 'reads keep working');
    assert.equal(jobs.body.jobs[0].job_id, 'e1');
    const refused = await postJson(`${t.url}/v1/jobs`, { job_id: 'e2', model: 'm-131', dataset: 'ds-550' });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'runtime_unavailable');
    assert.match(refused.body.error.message, /Docker engine unavailable/);
    const ready = await getJson(`${t.url}/readyz`);
    assert.equal(ready.status, 503);

    await startEngine(engineArgs);
    engineArgs = undefined;
    // The worker died with the engine: the reconciler notices and restarts it.
    const back = await waitForServer(
      t.router,
      serverId,
      (s) => s.state === 'ready' && s.restarts >= 1,
      60_000,
    );
    assert.equal(back.jobId, 'e1');
    const again = await postJson(`${t.url}/v1/jobs`, { job_id: 'e2', model: 'm-131', dataset: 'ds-550' });
    assert.equal(again.status, 201, 'operations work again');
    // /readyz answers from a check at most READY_CHECK_MS old (docs/security.md): the
    // outage's answer may stand that long after the engine is back, not longer.
    const readyBy = Date.now() + READY_CHECK_MS + 5_000;
    let readiness = await getJson(`${t.url}/readyz`);
    while (readiness.status !== 200 && Date.now() < readyBy) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      readiness = await getJson(`${t.url}/readyz`);
    }
    assert.equal(readiness.status, 200, JSON.stringify(readiness.body));
  });
});
