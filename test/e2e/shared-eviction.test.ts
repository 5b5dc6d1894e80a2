/**
 * Eviction on a shared worker, on the real engine (docs/operations.md#memory-on-shared-workers):
 * one shared worker (MODELDOCK_MAX_SERVERS=1) whose memory limit holds three 64 MiB
 * models, measured by the worker's cgroup. A fourth job evicts the least recently used
 * one (an EVICT operation, reason `lru`; the server `unloaded`, reason `evicted`); a
 * request to the evicted job loads it again and succeeds; a model loaded less than the
 * minimum residency ago is spared while an older one can go.
 */
import assert from 'node:assert/strict';
import { chmod, cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBigModel, TEST_MODELS_DIR } from '../helpers/models.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

/** big-64's input width: a 4096 × 4096 FP32 weight matrix. */
const WIDTH = 4096;

async function infer(t: TestRouter, job: string) {
  return postJson(`${t.url}/v2/models/${job}/infer`, {
    inputs: [{ name: 'x', shape: [1, WIDTH], datatype: 'FP32', data: new Array(WIDTH).fill(0.5) }],
  });
}

async function create(t: TestRouter, job: string) {
  const answer = await postJson(`${t.url}/v1/jobs`, { job_id: job, model: 'big-64', dataset: 'ds-550' });
  assert.ok(answer.status === 200 || answer.status === 201, JSON.stringify(answer.body));
  return answer.body;
}

async function server(t: TestRouter, job: string): Promise<{ state: string; reason: string | null }> {
  const answer = await getJson(`${t.url}/v1/jobs/${job}`);
  return answer.body.server;
}

async function evictions(t: TestRouter, job: string) {
  const answer = await getJson(`${t.url}/v1/operations?job_id=${job}&type=EVICT`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.operations as { reason: string; status: string; warnings: string[] }[];
}

describe('eviction on a shared worker', { timeout: 300_000 }, () => {
  let modelsDir: string;
  const routers: TestRouter[] = [];
  const start = async (minResidencyMs: number) => {
    const t = await startTestRouter({
      env: {
        MODELDOCK_MODELS_DIR: modelsDir,
        MODELDOCK_PLACEMENT: 'shared',
        MODELDOCK_MAX_SERVERS: '1',
        // An idle worker measures ~35 MiB in its cgroup and a load needs room for twice its
        // model at its peak: three 64 MiB models fit, a fourth needs one evicted.
        MODELDOCK_WORKER_MEMORY: '320m',
        MODELDOCK_MIN_RESIDENCY_MS: String(minResidencyMs),
        MODELDOCK_SHARED_IDLE_MS: '600000',
      },
    });
    routers.push(t);
    return t;
  };

  before(async () => {
    await ensureBigModel(64);
    modelsDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-evict-models-'));
    await chmod(modelsDir, 0o755); // the workers run unprivileged
    await cp(path.join(TEST_MODELS_DIR, 'big-64'), path.join(modelsDir, 'big-64'), { recursive: true });
  });
  after(async () => {
    for (const t of routers) await t.cleanup();
    await rm(modelsDir, { recursive: true, force: true });
  });

  it('evicts the least recently used model for a new one, and its next request loads it again', async () => {
    const t = await start(0);
    const first = await create(t, 'e1');
    await create(t, 'e2');
    await create(t, 'e3');
    assert.deepEqual(
      [await server(t, 'e1'), await server(t, 'e2'), await server(t, 'e3')].map((s) => s.state),
      ['ready', 'ready', 'ready'],
      'the premise: three fit',
    );
    assert.equal((await infer(t, 'e1')).status, 200); // e2 is now the least recently used
    const fourth = await create(t, 'e4');
    assert.equal(fourth.server.container_name, first.server.container_name, 'the one shared worker');
    assert.deepEqual(
      [await server(t, 'e1'), await server(t, 'e2'), await server(t, 'e3'), await server(t, 'e4')].map(
        (s) => `${s.state}:${s.reason ?? ''}`,
      ),
      ['ready:', 'unloaded:evicted', 'ready:', 'ready:'],
    );
    const [record] = await evictions(t, 'e2');
    assert.equal(record?.reason, 'lru');
    assert.equal(record?.status, 'succeeded');
    assert.match(record!.warnings.join(' '), /make room for job e4/);

    // The evicted job's next request waits for its model and succeeds.
    const answer = await infer(t, 'e2');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal((await server(t, 'e2')).state, 'ready');
    assert.equal((await evictions(t, 'e3')).length, 1, 'e3, least recently used then, made room');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /modeldock_evictions_total\{residency="old"\} 2/);
    assert.match(metrics, /modeldock_cold_load_duration_seconds_count\{placement="shared"\} 1/);
  });

  it('spares a model loaded less than the minimum residency ago while an older one can go', async () => {
    const residencyMs = 4_000;
    const t = await start(residencyMs);
    await create(t, 'r1');
    // r1 must be older than the residency; the others younger. Time is what is tested.
    await new Promise((resolve) => setTimeout(resolve, residencyMs));
    await create(t, 'r2');
    await create(t, 'r3');
    assert.equal((await infer(t, 'r1')).status, 200); // r1: most recently used, but old
    await create(t, 'r4'); // r2 and r3 are less recently used, but young: r1 goes
    assert.deepEqual(
      [await server(t, 'r1'), await server(t, 'r2'), await server(t, 'r3')].map((s) => s.state),
      ['unloaded', 'ready', 'ready'],
    );
    assert.equal((await evictions(t, 'r1'))[0]?.reason, 'lru');
  });
});
