/**
 * Per-job serialization and cross-job parallelism, on the real engine: twenty
 * concurrent DEPLOY_CREATE for one job give one container; ten jobs created at once
 * give ten containers with distinct server numbers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import {
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  type TestRouter,
} from '../helpers/router.js';

describe('concurrent operations', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter();
  });
  after(async () => {
    await t?.cleanup();
  });

  it('20 concurrent DEPLOY_CREATE for one job create exactly one container', async () => {
    const body = { job_id: 'c1', model: 'm-131', dataset: 'ds-550', operation_type: 'DEPLOY_CREATE' };
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => postJson(`${t.url}/inference_router/`, body)),
    );
    for (const r of responses) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(new Set(responses.map((r) => r.body.server_id)).size, 1);
    assert.equal(new Set(responses.map((r) => r.body.container_id)).size, 1);
    assert.ok(responses.every((r) => r.body.state === 'ready'));
    const containers = await instanceContainers(t.docker, t.instance);
    assert.equal(containers.filter((c) => c.Labels[LABELS.job] === 'c1').length, 1);

    const ops = (await getJson(`${t.url}/v1/operations?job_id=c1&limit=50`)).body.operations;
    assert.equal(ops.length, 20, 'every request is recorded');
    const creating = ops.filter((o: { steps: { name: string }[] }) =>
      o.steps.some((s) => s.name === 'create'),
    );
    assert.equal(creating.length, 1, 'one of them created the container, the others found it ready');
  });

  it('10 jobs created in parallel get 10 containers with distinct numbers', async () => {
    const jobs = Array.from({ length: 10 }, (_, i) => `p${i}`);
    const responses = await Promise.all(
      jobs.map((job_id) => postJson(`${t.url}/v1/jobs`, { job_id, model: 'm-131', dataset: 'ds-550' })),
    );
    for (const r of responses) assert.equal(r.status, 201, JSON.stringify(r.body));
    const serverIds = responses.map((r) => r.body.server.server_id);
    assert.equal(new Set(serverIds).size, 10);
    const containers = await instanceContainers(t.docker, t.instance);
    for (const job of jobs) {
      assert.equal(containers.filter((c) => c.Labels[LABELS.job] === job).length, 1, job);
    }
    const listed = (await getJson(`${t.url}/v1/servers?state=ready`)).body.servers;
    assert.equal(listed.length, 11);
  });
});
