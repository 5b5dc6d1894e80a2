/**
 * The warm pool under a memory budget (MODELDOCK_WARM_POOL with MODELDOCK_MEMORY_BUDGET):
 * idle pool workers count against the budget at their measured memory, the pool holds
 * only as many as fit next to the loaded models, a model that needs the room takes it
 * from the pool before any model is unloaded, and the pool refills to its configured
 * size once memory is released.
 *
 * The budget is sized from what a pool worker measures on this machine (a router
 * without a budget measures one first), so the test does not hang on a guessed figure.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBigModel, ensureDatatypesModel, TEST_MODELS_DIR } from '../helpers/models.js';
import {
  DATASETS_DIR,
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  uniqueInstance,
  type TestRouter,
} from '../helpers/router.js';

const MiB = 1024 ** 2;

describe('warm pool bounded by the memory budget', () => {
  const instance = uniqueInstance('poolmem');
  let measured: any;
  let budget: number;
  let big: string;
  let small: string;
  let t: TestRouter;

  const pool = async () => (await getJson(`${t.url}/v1/pool`)).body;
  const bounds = async () => {
    const { size, limit, bounded_by, ready, filling } = await pool();
    return { size, limit, bounded_by, ready, filling };
  };
  const state = async (job: string) => (await getJson(`${t.url}/v1/jobs/${job}`)).body.state;
  const unloadsOf = async (job: string) =>
    (await getJson(`${t.url}/v1/operations?job_id=${job}&type=DEPLOY_UNLOAD`)).body.operations;

  before(async () => {
    big = await ensureBigModel(256);
    small = await ensureDatatypesModel();
    const probe = await startTestRouter({ env: { MODELDOCK_WARM_POOL: '1' } });
    try {
      await probe.router.lifecycle.pool.whenFull();
      measured = (await getJson(`${probe.url}/v1/pool`)).body;
    } finally {
      await probe.cleanup();
    }
    // Next to the big model there is room for one pool worker and a half: one fits, two do not.
    const bigBytes = (await stat(path.join(TEST_MODELS_DIR, big, 'model.onnx'))).size;
    budget = bigBytes + Math.floor(1.5 * measured.worker_bytes);
    assert.ok(
      3 * measured.worker_bytes <= budget,
      `a pool worker measures ${measured.worker_bytes} bytes; this test needs three to fit beside nothing`,
    );
    t = await startTestRouter({
      instance,
      env: {
        MODELDOCK_MODELS_DIR: TEST_MODELS_DIR,
        MODELDOCK_DATASETS_DIR: DATASETS_DIR,
        MODELDOCK_WARM_POOL: '3',
        MODELDOCK_MEMORY_BUDGET: String(budget),
      },
    });
    await t.router.lifecycle.pool.whenFull();
  });
  after(async () => {
    await t?.cleanup();
  });

  it('a pool worker counts at its measured memory, not the estimate', () => {
    assert.equal(measured.worker_bytes_measured, true);
    assert.ok(
      measured.worker_bytes > 8 * MiB && measured.worker_bytes < 1024 * MiB,
      `rss of a model-less worker: ${measured.worker_bytes}`,
    );
  });

  it('with only a small model loaded, the configured three fit', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'small', model: small, dataset: 'ds-550' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await t.router.lifecycle.pool.whenFull();
    assert.deepEqual(await bounds(), { size: 3, limit: 3, bounded_by: null, ready: 3, filling: 0 });
  });

  it('a model that needs the room takes it from the pool: one worker left, no model unloaded', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'big', model: big, dataset: 'ds-550' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await t.router.lifecycle.pool.whenFull();
    assert.deepEqual(await bounds(), {
      size: 3,
      limit: 1,
      bounded_by: 'memory_budget',
      ready: 1,
      filling: 0,
    });
    assert.deepEqual([await state('small'), await state('big')], ['ready', 'ready']);
    assert.deepEqual(await unloadsOf('small'), [], 'the small model was not unloaded for the big one');
    assert.equal(
      (await instanceContainers(t.docker, instance)).length,
      3,
      'two job workers, one pool worker',
    );
  });

  it('DEPLOY_UNLOAD frees the room and the pool refills; DEPLOY_LOAD takes it back', async () => {
    assert.equal((await postJson(`${t.url}/v1/jobs/big/unload`, {})).status, 200);
    await t.router.lifecycle.pool.whenFull();
    assert.deepEqual(await bounds(), { size: 3, limit: 3, bounded_by: null, ready: 3, filling: 0 });

    const loaded = await postJson(`${t.url}/v1/jobs/big/load`, {});
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    await t.router.lifecycle.pool.whenFull();
    assert.equal((await bounds()).limit, 1);
    assert.equal((await bounds()).ready, 1);
    assert.equal(await state('small'), 'ready');
    assert.deepEqual(await unloadsOf('small'), []);
  });

  it('after TERMINATE the pool refills to its configured size', async () => {
    const terminated = await postJson(`${t.url}/v1/jobs/big/terminate`, {});
    assert.equal(terminated.status, 200, JSON.stringify(terminated.body));
    await t.router.lifecycle.pool.whenFull();
    assert.deepEqual(await bounds(), { size: 3, limit: 3, bounded_by: null, ready: 3, filling: 0 });
    const status = await pool();
    assert.equal(status.worker_bytes_measured, true);
    assert.ok(status.budget_free_bytes >= 3 * status.worker_bytes);
    assert.equal(
      (await instanceContainers(t.docker, instance)).length,
      4,
      'one job worker, three pool workers',
    );
  });
});
