/**
 * The memory policy on the real engine: a loaded-model limit and a memory budget unload
 * the least recently used model to make room, an idle keep-alive unloads a model nobody
 * uses; each unload is in the operation history with its reason, and the next
 * inference loads the model again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getJson, postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';
import { DIGITS } from '../helpers/fixtures.js';

const record = DIGITS[0]!;
const infer = (t: TestRouter, job: string) =>
  postJson(`${t.url}/v1/jobs/${job}/infer`, {
    inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
  });
const state = async (t: TestRouter, job: string) => (await getJson(`${t.url}/v1/jobs/${job}`)).body.state;
const create = async (t: TestRouter, job: string) =>
  assert.equal(
    (await postJson(`${t.url}/v1/jobs`, { job_id: job, model: 'm-131', dataset: 'ds-550' })).status,
    201,
  );

async function lruScenario(t: TestRouter) {
  await create(t, 'm1');
  await create(t, 'm2');
  await create(t, 'm3');
  assert.deepEqual(
    [await state(t, 'm1'), await state(t, 'm2'), await state(t, 'm3')],
    ['unloaded', 'ready', 'ready'],
  );
  const unload = (await getJson(`${t.url}/v1/operations?job_id=m1&type=DEPLOY_UNLOAD`)).body.operations[0];
  assert.equal(unload.reason, 'lru');
  // m1 is used again: it is loaded on demand and m2, now the least recently used, makes room.
  await infer(t, 'm3');
  assert.equal((await infer(t, 'm1')).status, 200);
  assert.deepEqual(
    [await state(t, 'm1'), await state(t, 'm2'), await state(t, 'm3')],
    ['ready', 'unloaded', 'ready'],
  );
}

describe('memory policy', () => {
  it('MODELDOCK_MAX_LOADED_MODELS=2 unloads the least recently used model', async () => {
    const t = await startTestRouter({ env: { MODELDOCK_MAX_LOADED_MODELS: '2' } });
    try {
      await lruScenario(t);
    } finally {
      await t.cleanup();
    }
  });

  it('a memory budget for two copies of m-131 does the same by size', async () => {
    // m-131 is 10088 bytes: 25 KiB holds two, not three.
    const t = await startTestRouter({ env: { MODELDOCK_MEMORY_BUDGET: '25k' } });
    try {
      await lruScenario(t);
    } finally {
      await t.cleanup();
    }
  });

  it('an idle keep-alive unloads a model nobody uses, and inference brings it back', async () => {
    const t = await startTestRouter({ env: { MODELDOCK_IDLE_UNLOAD_SECONDS: '1' } });
    try {
      const created = await postJson(`${t.url}/v1/jobs`, {
        job_id: 'idle1',
        model: 'm-131',
        dataset: 'ds-550',
      });
      const unloaded = await waitForServer(
        t.router,
        created.body.server.server_id,
        (s) => s.state === 'unloaded',
        10_000,
      );
      assert.equal(unloaded.reason, 'idle_timeout');
      const op = (await getJson(`${t.url}/v1/operations?job_id=idle1&type=DEPLOY_UNLOAD`)).body.operations[0];
      assert.equal(op.reason, 'idle_timeout');
      assert.equal((await infer(t, 'idle1')).status, 200);
      assert.equal(await state(t, 'idle1'), 'ready');
    } finally {
      await t.cleanup();
    }
  });
});
