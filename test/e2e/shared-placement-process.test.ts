/**
 * Shared placement on the process runtime: the original five requests of a shared job,
 * with MODELDOCK_PLACEMENT=shared and no placement in the payload, run without a worker
 * process per job; a shared job of two replicas gets two shared workers (a worker never
 * hosts one job twice), both answering.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { DIGIT_INFER_BODY } from '../helpers/inference-load.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { postJson, startTestRouter, uniqueInstance, type TestRouter } from '../helpers/router.js';

describe('shared placement on the process runtime', { timeout: 300_000 }, () => {
  let stateDir: string;
  const instance = uniqueInstance('procshared');
  let t: TestRouter;
  const makeRuntime = () =>
    new ProcessRuntime({ instance, stateDir, modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR });

  before(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-procshared-state-'));
    t = await startTestRouter({ instance, runtime: makeRuntime, env: { MODELDOCK_PLACEMENT: 'shared' } });
  });
  after(async () => {
    await t?.stop();
    const runtime = makeRuntime();
    for (const worker of await runtime.list()) await runtime.remove(worker.name);
    await runtime.close();
    await t?.cleanup();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('the five original requests, verbatim, on a shared worker', async () => {
    const states: string[] = [];
    for (const body of ORIGIN_REQUESTS) {
      const response = await postJson(`${t.url}/inference_router/`, body);
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 400));
      states.push(`${response.body.operation_type}:${response.body.state}`);
      assert.equal(response.body.placement, 'shared', response.body.operation_type);
      assert.match(response.body.container_name, /-shared-\d{4,}$/);
      if (response.body.operation_type === 'TEMP') assert.equal(response.body.result.count, 550);
    }
    assert.deepEqual(states, [
      'DEPLOY_CREATE:ready',
      'DEPLOY_LOAD:ready',
      'DEPLOY_UNLOAD:unloaded',
      'TERMINATE:terminated',
      'TEMP:terminated',
    ]);
    const workers = await t.runtime.list();
    assert.ok(
      workers.every((w) => /-shared-\d{4,}$/.test(w.name)),
      `only shared workers: ${workers.map((w) => w.name).join(', ')}`,
    );
  });

  it('two replicas of a shared job live on two shared workers and both answer', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'pr2',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 2, max: 2 },
    });
    assert.ok([200, 201].includes(created.status), JSON.stringify(created.body).slice(0, 400));
    const servers = created.body.servers as { container_name: string; placement: string; endpoint: string }[];
    assert.equal(servers.length, 2);
    assert.ok(servers.every((s) => s.placement === 'shared'));
    assert.notEqual(
      servers[0]!.container_name,
      servers[1]!.container_name,
      'one worker never hosts a job twice',
    );
    for (let i = 0; i < 20; i++) {
      const answer = await postJson(`${t.url}/v2/models/pr2/infer`, DIGIT_INFER_BODY);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    for (const server of servers) {
      const stats = await t.router.workers.modelJson<{ model_stats: { execution_count: number }[] }>(
        server.endpoint,
        '/v2/models/pr2/stats',
      );
      assert.ok(stats.model_stats[0]!.execution_count > 0, `${server.container_name} answered requests`);
    }
  });
});
