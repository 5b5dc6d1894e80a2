/**
 * Every bad input of the original payload gets a clear 4xx and changes nothing: no
 * container, no job, no operation record. A container_id naming a container modeldock
 * does not own is never acted on: that container survives.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  type TestRouter,
} from '../helpers/router.js';

const valid = {
  job_id: 'b1',
  model: 'm-131',
  dataset: 'ds-550',
  operation_type: 'DEPLOY_CREATE',
  container_id: 'aa',
};

describe('bad input on POST /inference_router/', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_BODY_LIMIT: '64k' } });
  });
  after(async () => {
    await t?.cleanup();
  });

  const cases: [string, unknown, number, RegExp][] = [
    ['missing job_id', { ...valid, job_id: undefined }, 400, /job_id/],
    ['missing model', { ...valid, model: undefined }, 400, /model/],
    ['missing dataset', { ...valid, dataset: undefined }, 400, /dataset/],
    ['missing operation_type', { ...valid, operation_type: undefined }, 400, /operation_type/],
    ['job_id of the wrong type', { ...valid, job_id: 7 }, 400, /job_id/],
    ['model of the wrong type', { ...valid, model: ['m-131'] }, 400, /model/],
    ['container_id of the wrong type', { ...valid, container_id: 12 }, 400, /container_id/],
    ['unknown operation_type', { ...valid, operation_type: 'DEPLOY_EVERYTHING' }, 400, /operation_type/],
    ['lower-case operation_type', { ...valid, operation_type: 'deploy_create' }, 400, /operation_type/],
    ['empty job_id', { ...valid, job_id: '' }, 400, /job_id/],
    ['unknown model', { ...valid, model: 'm-999' }, 404, /model "m-999" not found/],
    ['unknown dataset', { ...valid, dataset: 'ds-999' }, 404, /dataset "ds-999" not found/],
    ['path trick in model', { ...valid, model: '../../etc' }, 400, /not a valid id/],
    ['path trick in model (dots)', { ...valid, model: 'm-131/../m-131' }, 400, /not a valid id/],
    ['path trick in dataset', { ...valid, dataset: '..' }, 400, /not a valid id/],
    ['path trick in job_id', { ...valid, job_id: '../a1' }, 400, /not a valid id/],
    ['job_id with a space', { ...valid, job_id: 'a 1' }, 400, /not a valid id/],
    ['an array instead of an object', [valid], 400, /./],
    ['null body', null, 400, /./],
  ];

  for (const [name, body, status, message] of cases) {
    it(`${name} → ${status}`, async () => {
      const response = await postJson(`${t.url}/inference_router/`, JSON.stringify(body));
      assert.equal(response.status, status, JSON.stringify(response.body));
      assert.equal(typeof response.body.error.code, 'string');
      assert.match(response.body.error.message, message);
      assert.doesNotMatch(JSON.stringify(response.body), /at .*\.(ts|js):\d+/, 'no stack trace');
    });
  }

  it('malformed JSON → 400', async () => {
    const response = await postJson(`${t.url}/inference_router/`, '{"job_id": "b1",');
    assert.equal(response.status, 400);
    assert.equal(response.body.error.code, 'invalid_input');
  });

  it('a body that is not JSON → 415', async () => {
    const response = await fetch(`${t.url}/inference_router/`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'job_id=b1',
    });
    assert.equal(response.status, 415);
  });

  it('an oversized body → 413', async () => {
    const response = await postJson(`${t.url}/inference_router/`, {
      ...valid,
      padding: 'x'.repeat(256 * 1024),
    });
    assert.equal(response.status, 413);
    assert.equal(response.body.error.code, 'payload_too_large');
  });

  it('DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE of an unknown job → 404', async () => {
    for (const operation_type of ['DEPLOY_LOAD', 'DEPLOY_UNLOAD', 'TERMINATE']) {
      const response = await postJson(`${t.url}/inference_router/`, {
        ...valid,
        job_id: 'nobody',
        operation_type,
      });
      assert.equal(response.status, 404, operation_type);
      assert.match(response.body.error.message, /job nobody not found/);
    }
  });

  it('none of the above created a container, a job or an operation record', async () => {
    assert.equal((await instanceContainers(t.docker, t.instance)).length, 0);
    assert.deepEqual((await getJson(`${t.url}/v1/jobs`)).body.jobs, []);
    assert.deepEqual((await getJson(`${t.url}/v1/operations`)).body.operations, []);
  });

  it('a container_id naming a container modeldock does not own is reported, never acted on', async () => {
    const foreign = await t.docker.createContainer({
      name: `foreign-${t.instance}`,
      Image: t.config.workerImage,
      Labels: { 'test.owner': 'someone-else' },
      HostConfig: { ReadonlyRootfs: true, Tmpfs: { '/tmp': '' } },
    });
    try {
      await foreign.start();
      const created = await postJson(`${t.url}/inference_router/`, { ...valid, container_id: foreign.id });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      assert.notEqual(created.body.container_id, foreign.id);
      assert.match(created.body.warnings.join('\n'), /ignored/);

      const terminated = await postJson(`${t.url}/inference_router/`, {
        ...valid,
        operation_type: 'TERMINATE',
        container_id: foreign.id,
      });
      assert.equal(terminated.status, 200);
      assert.equal(terminated.body.state, 'terminated');
      assert.match(terminated.body.warnings.join('\n'), /ignored/);

      // Also through a full reconcile pass, which removes orphans with our labels only.
      await t.router.reconciler.reconcileAll('test');
      const info = await foreign.inspect();
      assert.equal(info.State.Running, true, 'the foreign container survived');
    } finally {
      await foreign.remove({ force: true });
    }
  });

  it('a model mismatch on an existing job is a 409 and changes nothing', async () => {
    const created = await postJson(`${t.url}/inference_router/`, { ...valid, job_id: 'b2' });
    assert.equal(created.status, 200);
    const before = await getJson(`${t.url}/v1/jobs/b2`);
    const clash = await postJson(`${t.url}/inference_router/`, {
      ...valid,
      job_id: 'b2',
      dataset: 'ds-missing-but-valid-id',
      operation_type: 'DEPLOY_LOAD',
    });
    assert.equal(clash.status, 409, JSON.stringify(clash.body));
    const afterJob = await getJson(`${t.url}/v1/jobs/b2`);
    assert.deepEqual(afterJob.body, before.body);
  });
});
