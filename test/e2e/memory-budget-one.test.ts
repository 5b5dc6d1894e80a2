/**
 * One memory budget for every worker, on the real engine (docs/operations.md#one-budget-for-every-worker):
 * MODELDOCK_MEMORY_BUDGET bounds the shared workers (at what their cgroups measure) and
 * the dedicated servers together. Three shared jobs of 64 MiB fill most of a 320 MiB
 * budget; a dedicated job of 128 MiB then evicts the least recently used idle shared
 * model to fit (an EVICT operation naming the dedicated job), and while it holds its
 * memory a new shared job cannot be placed as if it did not (429, shared_memory).
 * Once the dedicated job is terminated the evicted job's next request loads it again.
 */
import assert from 'node:assert/strict';
import { chmod, cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBigModel, TEST_MODELS_DIR } from '../helpers/models.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

async function infer(t: TestRouter, job: string, width: number) {
  return postJson(`${t.url}/v2/models/${job}/infer`, {
    inputs: [{ name: 'x', shape: [1, width], datatype: 'FP32', data: new Array(width).fill(0.5) }],
  });
}

async function create(t: TestRouter, job: string, model: string, placement: 'shared' | 'dedicated') {
  return postJson(`${t.url}/v1/jobs`, { job_id: job, model, dataset: 'ds-550', placement });
}

async function server(t: TestRouter, job: string): Promise<{ state: string; reason: string | null }> {
  return (await getJson(`${t.url}/v1/jobs/${job}`)).body.server;
}

describe('one memory budget for dedicated and shared workers', { timeout: 300_000 }, () => {
  let modelsDir: string;
  let t: TestRouter;

  before(async () => {
    await Promise.all([ensureBigModel(64), ensureBigModel(128)]);
    modelsDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-budget-models-'));
    await chmod(modelsDir, 0o755); // the workers run unprivileged
    for (const model of ['big-64', 'big-128']) {
      await cp(path.join(TEST_MODELS_DIR, model), path.join(modelsDir, model), { recursive: true });
    }
    t = await startTestRouter({
      env: {
        MODELDOCK_MODELS_DIR: modelsDir,
        // One shared worker and one dedicated server.
        MODELDOCK_MAX_SERVERS: '2',
        MODELDOCK_WORKER_MEMORY: '320m',
        // An idle worker measures ~35 MiB in its cgroup and a load needs room for twice its
        // model at its peak: three 64 MiB shared models fit in 320 MiB, not beside 128 more.
        MODELDOCK_MEMORY_BUDGET: '320m',
        MODELDOCK_MIN_RESIDENCY_MS: '0',
        MODELDOCK_SHARED_IDLE_MS: '600000',
      },
    });
  });
  after(async () => {
    await t?.cleanup();
    await rm(modelsDir, { recursive: true, force: true });
  });

  it('a dedicated load evicts an idle shared model, and a shared load counts the dedicated one', async () => {
    for (const job of ['s1', 's2', 's3']) {
      const answer = await create(t, job, 'big-64', 'shared');
      assert.ok(answer.status === 200 || answer.status === 201, JSON.stringify(answer.body));
    }
    assert.deepEqual(
      [await server(t, 's1'), await server(t, 's2'), await server(t, 's3')].map((s) => s.state),
      ['ready', 'ready', 'ready'],
      'the premise: three shared models fit in the budget',
    );
    assert.equal((await infer(t, 's1', 4096)).status, 200); // s2 is now the least recently used

    const dedicated = await create(t, 'd1', 'big-128', 'dedicated');
    assert.ok(dedicated.status === 200 || dedicated.status === 201, JSON.stringify(dedicated.body));
    assert.equal(dedicated.body.server.state, 'ready');
    assert.deepEqual(
      [await server(t, 's1'), await server(t, 's2'), await server(t, 's3')].map(
        (s) => `${s.state}:${s.reason ?? ''}`,
      ),
      ['ready:', 'unloaded:evicted', 'ready:'],
      'the least recently used idle shared model made room for the dedicated one',
    );
    const evictions = await getJson(`${t.url}/v1/operations?job_id=s2&type=EVICT`);
    const [record] = evictions.body.operations as { reason: string; status: string; warnings: string[] }[];
    assert.equal(record?.status, 'succeeded');
    assert.equal(record?.reason, 'lru');
    assert.match(record!.warnings.join(' '), /make room for job d1/);

    // The dedicated model holds its memory: a new shared model does not fit beside it,
    // and evicting both shared models left would empty the worker's cache.
    const refused = await create(t, 's4', 'big-64', 'shared');
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.match(JSON.stringify(refused.body), /shared_memory/);

    // The dedicated job gone, its memory is the shared jobs' again: s2's request loads it.
    const gone = await postJson(`${t.url}/v1/jobs/d1/terminate`, {});
    assert.ok(gone.status === 200, JSON.stringify(gone.body));
    const answer = await infer(t, 's2', 4096);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal((await server(t, 's2')).state, 'ready');
  });
});
