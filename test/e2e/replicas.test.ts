/**
 * Replicas per job on the real engine: a job asks for n servers and gets n workers, each
 * labelled with its job; inference over every path (hot path, /v2 route, /v1) is spread
 * over them; DEPLOY_UNLOAD, DEPLOY_LOAD and TERMINATE act on all of them (through /v1
 * and the original payload); bad bounds are refused with 400 and change nothing; the
 * quota counts replicas.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import { allInferPaths, failureDigest, InferenceLoad } from '../helpers/inference-load.js';
import {
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  type TestRouter,
} from '../helpers/router.js';

const original = (body: Record<string, unknown>) => ({ model: 'm-131', dataset: 'ds-550', ...body });

describe('replicas per job', { timeout: 240_000 }, () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_MAX_SERVERS: '4' } });
  });
  after(async () => {
    await t?.cleanup();
  });

  /** Requests each of the job's workers answered for it, by server id. */
  async function answeredPerServer(jobId: string): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const { body } = await getJson(`${t.url}/v1/jobs/${jobId}`);
    for (const server of body.servers) {
      const stats = await t.router.workers.modelJson<{ model_stats: { execution_count: number }[] }>(
        server.endpoint,
        `/v2/models/${jobId}/stats`,
      );
      counts.set(server.server_id, stats.model_stats[0]?.execution_count ?? 0);
    }
    return counts;
  }

  it('creates one worker per replica, each labelled with its job, and shows them', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'rep2',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 2, max: 2 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.servers.length, 2);
    assert.deepEqual(
      created.body.servers.map((s: { state: string }) => s.state),
      ['ready', 'ready'],
    );
    const job = await getJson(`${t.url}/v1/jobs/rep2`);
    assert.equal(job.status, 200);
    assert.equal(job.body.state, 'ready');
    assert.deepEqual(job.body.replicas, { min: 2, max: 2, desired: 2, ready: 2, scale_target: null });
    const names = job.body.servers.map((s: { container_name: string }) => s.container_name);
    assert.equal(new Set(names).size, 2, 'two distinct containers');
    const containers = await instanceContainers(t.docker, t.instance);
    for (const name of names) {
      const container = containers.find((c) => c.Names.includes(`/${name}`));
      assert.ok(container, `container ${name} exists`);
      assert.equal(container.State, 'running');
    }
    const listed = await getJson(`${t.url}/v1/jobs`);
    const entry = listed.body.jobs.find((j: { job_id: string }) => j.job_id === 'rep2');
    assert.equal(entry.servers.length, 2);
  });

  it('spreads inference over the replicas on every path, with no failed request', async () => {
    const before = await answeredPerServer('rep2');
    const load = new InferenceLoad(t.url, allInferPaths('rep2'), {
      connections: 6,
      maxRequests: 600,
    }).start();
    await load.answered(600);
    const all = await load.stop();
    const failed = all.filter((s) => s.status !== 200);
    assert.equal(failed.length, 0, failureDigest(failed));
    const afterCounts = await answeredPerServer('rep2');
    const served = [...afterCounts].map(([id, n]) => [id, n - (before.get(id) ?? 0)] as const);
    for (const [id, n] of served) assert.ok(n >= 100, `replica ${id} answered ${n} of ${all.length}`);
  });

  it('unloads, loads and terminates every replica through the original payload', async () => {
    const unload = await postJson(
      `${t.url}/inference_router/`,
      original({ job_id: 'rep2', operation_type: 'DEPLOY_UNLOAD', container_id: 'aa' }),
    );
    assert.equal(unload.status, 200, JSON.stringify(unload.body));
    assert.equal(unload.body.status, 'succeeded');
    assert.deepEqual(
      unload.body.servers.map((s: { state: string }) => s.state),
      ['unloaded', 'unloaded'],
    );
    const load = await postJson(
      `${t.url}/inference_router/`,
      original({ job_id: 'rep2', operation_type: 'DEPLOY_LOAD' }),
    );
    assert.equal(load.status, 200, JSON.stringify(load.body));
    assert.deepEqual(
      load.body.servers.map((s: { state: string }) => s.state),
      ['ready', 'ready'],
    );
    const names = load.body.servers.map((s: { container_name: string }) => s.container_name);
    const terminate = await postJson(
      `${t.url}/inference_router/`,
      original({ job_id: 'rep2', operation_type: 'TERMINATE' }),
    );
    assert.equal(terminate.status, 200, JSON.stringify(terminate.body));
    assert.deepEqual(
      terminate.body.servers.map((s: { state: string }) => s.state),
      ['terminated', 'terminated'],
    );
    const containers = await instanceContainers(t.docker, t.instance);
    for (const name of names) {
      assert.ok(!containers.some((c) => c.Names.includes(`/${name}`)), `container ${name} is removed`);
    }
    const job = await getJson(`${t.url}/v1/jobs/rep2`);
    assert.equal(job.body.state, 'none');
    assert.deepEqual(job.body.servers, []);
  });

  it('takes replicas as an extra field of the original DEPLOY_CREATE; without it, one server as before', async () => {
    const plain = await postJson(
      `${t.url}/inference_router/`,
      original({ job_id: 'orig1', operation_type: 'DEPLOY_CREATE', container_id: 'aa' }),
    );
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(plain.body.state, 'ready');
    assert.equal(plain.body.servers, undefined, 'a one-server job answers as the original did');
    const replicated = await postJson(
      `${t.url}/inference_router/`,
      original({ job_id: 'orig2', operation_type: 'DEPLOY_CREATE', replicas: { min: 2, max: 3 } }),
    );
    assert.equal(replicated.status, 200, JSON.stringify(replicated.body));
    assert.equal(replicated.body.servers.length, 2);
    const labelled = await instanceContainers(t.docker, t.instance);
    assert.equal(
      labelled.filter((c) => c.Labels[LABELS.job] === 'orig2').length,
      2,
      'one container per replica',
    );
  });

  it('counts replicas against MODELDOCK_MAX_SERVERS: a create past it is 429 and leaves nothing', async () => {
    // orig1 (1) + orig2 (2) = 3 of 4: two more do not fit.
    const refused = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'toomany',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 2, max: 2 },
    });
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal((await getJson(`${t.url}/v1/jobs/toomany`)).status, 404, 'no job was recorded');
  });

  it('refuses bad replica bounds with 400 and changes nothing', async () => {
    for (const replicas of [
      { min: 3, max: 2 },
      { min: 0, max: 0 },
      { min: 1, max: 65 },
      { min: -1, max: 2 },
      { min: 1.5, max: 2 },
      { min: 1 },
    ]) {
      const answer = await postJson(`${t.url}/v1/jobs`, {
        job_id: 'bad1',
        model: 'm-131',
        dataset: 'ds-550',
        replicas,
      });
      assert.equal(answer.status, 400, `${JSON.stringify(replicas)}: ${JSON.stringify(answer.body)}`);
      const viaOriginal = await postJson(
        `${t.url}/inference_router/`,
        original({ job_id: 'bad1', operation_type: 'DEPLOY_CREATE', replicas }),
      );
      assert.equal(viaOriginal.status, 400, JSON.stringify(replicas));
    }
    assert.equal((await getJson(`${t.url}/v1/jobs/bad1`)).status, 404);
  });
});
