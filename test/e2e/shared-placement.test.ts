/**
 * Shared placement (docs/operations.md#shared-placement-many-jobs-per-worker): jobs whose
 * models are loaded into shared workers, many per worker. The five original operations
 * through the original payload with `"placement": "shared"`, inference over HTTP and gRPC,
 * the fleet opening a worker when the others are full, a model that fails to load beside
 * others that keep serving, re-placement after `docker kill`, and a router restart that
 * finds its shared workers and their models. Real Docker engine, real SQLite, real workers.
 */
import assert from 'node:assert/strict';
import { chmod, cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import { DIGITS } from '../helpers/fixtures.js';
import { inferenceClient, unaryCall } from '../helpers/grpc-client.js';
import { InferenceLoad, failureDigest } from '../helpers/inference-load.js';
import { freePort } from '../helpers/ports.js';
import {
  MODELS_DIR,
  getJson,
  instanceContainers,
  postJson,
  removeInstanceContainers,
  startTestRouter,
  uniqueInstance,
  type TestRouter,
} from '../helpers/router.js';

const DIGIT = DIGITS[0]!;

/** The original request, with shared placement as its extra field. */
function original(t: TestRouter, jobId: string, operation: string, extra: Record<string, unknown> = {}) {
  return postJson(`${t.url}/inference_router/`, {
    job_id: jobId,
    model: 'm-131',
    dataset: 'ds-550',
    operation_type: operation,
    container_id: 'aa',
    placement: 'shared',
    ...extra,
  });
}

/** One digit through the router's /v2 route: the label it predicts. */
async function inferLabel(t: TestRouter, jobId: string): Promise<number> {
  const answer = await postJson(`${t.url}/v2/models/${jobId}/infer`, {
    inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGIT.inputs.pixels }],
    outputs: [{ name: 'label' }],
  });
  assert.equal(answer.status, 200, `${jobId}: ${JSON.stringify(answer.body)}`);
  return Number(answer.body.outputs[0].data[0]);
}

/** The instance's running containers: name → labels. */
async function running(t: TestRouter): Promise<Map<string, Record<string, string>>> {
  const listed = await instanceContainers(t.docker, t.instance);
  return new Map(listed.filter((c) => c.State === 'running').map((c) => [c.Names[0]!.slice(1), c.Labels]));
}

describe('shared placement on Docker', { timeout: 600_000 }, () => {
  const instance = uniqueInstance('shared');
  let modelsDir: string;
  let dataDir: string;
  let port: number;
  let grpcPort: number;
  let t: TestRouter;
  const start = () =>
    startTestRouter({
      instance,
      dataDir,
      env: {
        MODELDOCK_PORT: String(port),
        MODELDOCK_GRPC_PORT: String(grpcPort),
        MODELDOCK_MODELS_DIR: modelsDir,
        MODELDOCK_SHARED_JOBS_PER_WORKER: '3',
        MODELDOCK_MAX_SHARED_JOBS: '5',
        // Long enough that no worker closes during the test; closing is tested below.
        MODELDOCK_SHARED_IDLE_MS: '600000',
        MODELDOCK_RESTART_BACKOFF_MS: '100',
      },
    });

  before(async () => {
    // The example store plus a model that cannot load (its file is not ONNX).
    modelsDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-shared-models-'));
    // The workers run as an unprivileged user: the store must be readable to them.
    await chmod(modelsDir, 0o755);
    await cp(path.join(MODELS_DIR, 'm-131'), path.join(modelsDir, 'm-131'), { recursive: true });
    await mkdir(path.join(modelsDir, 'm-bad'));
    await cp(path.join(MODELS_DIR, 'm-131', 'model.json'), path.join(modelsDir, 'm-bad', 'model.json'));
    await writeFile(path.join(modelsDir, 'm-bad', 'model.onnx'), 'this is not an ONNX model');
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-shared-'));
    port = await freePort();
    grpcPort = await freePort();
    t = await start();
  });
  after(async () => {
    await t?.stop();
    await removeInstanceContainers(t.docker, instance);
    await rm(dataDir, { recursive: true, force: true });
    await rm(modelsDir, { recursive: true, force: true });
  });

  let sharedWorker: string;

  it('DEPLOY_CREATE places two jobs on one shared worker: ready, one container, answers name it', async () => {
    const first = await original(t, 's1', 'DEPLOY_CREATE');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.state, 'ready');
    assert.equal(first.body.placement, 'shared');
    sharedWorker = first.body.container_name;
    assert.match(sharedWorker, new RegExp(`^${instance}-shared-\\d{4,}$`));
    const second = await original(t, 's2', 'DEPLOY_CREATE');
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.container_name, sharedWorker, 'the second job joins the first one’s worker');
    assert.equal(second.body.container_id, first.body.container_id);
    assert.ok(
      !second.body.steps.some((s: { name: string }) => s.name === 'create' || s.name === 'start'),
      `no container start for a job that fits: ${JSON.stringify(second.body.steps)}`,
    );
    const containers = await running(t);
    assert.deepEqual([...containers.keys()], [sharedWorker], 'one worker for both jobs');
    assert.equal(containers.get(sharedWorker)![LABELS.kind], 'shared');
    assert.equal(containers.get(sharedWorker)![LABELS.job], undefined, 'a shared worker is no one job’s');

    const job = await getJson(`${t.url}/v1/jobs/s2`);
    assert.equal(job.body.placement, 'shared');
    assert.equal(job.body.server.placement, 'shared');
    assert.equal(job.body.server.container_name, sharedWorker);
    // A live job keeps its placement; a placement that is neither is refused. Neither changes anything.
    const switched = await original(t, 's2', 'DEPLOY_CREATE', { placement: 'dedicated' });
    assert.equal(switched.status, 409, JSON.stringify(switched.body));
    assert.match(switched.body.error.message, /placed shared.*TERMINATE/);
    const bogus = await original(t, 'sx', 'DEPLOY_CREATE', { placement: 'everywhere' });
    assert.equal(bogus.status, 400, JSON.stringify(bogus.body));
    assert.equal(await t.store.getJob('sx'), undefined);
    assert.equal((await t.store.listServers({ jobId: 's2' })).length, 1);
    // A dedicated job beside them still gets a container of its own.
    const dedicated = await original(t, 'd1', 'DEPLOY_CREATE', { placement: 'dedicated' });
    assert.equal(dedicated.status, 200, JSON.stringify(dedicated.body));
    assert.equal(dedicated.body.placement, 'dedicated');
    assert.notEqual(dedicated.body.container_name, sharedWorker);
  });

  it('inference reaches each job’s model on the shared worker, over HTTP and gRPC', async () => {
    assert.equal(await inferLabel(t, 's1'), DIGIT.label);
    assert.equal(await inferLabel(t, 's2'), DIGIT.label);
    const client = inferenceClient(`127.0.0.1:${grpcPort}`);
    try {
      const answer = await unaryCall(
        client,
        'ModelInfer',
        {
          model_name: 's2',
          inputs: [
            {
              name: 'pixels',
              datatype: 'FP32',
              shape: [1, 64],
              contents: { fp32_contents: DIGIT.inputs.pixels },
            },
          ],
          outputs: [{ name: 'label' }],
        },
        { deadline: Date.now() + 60_000 },
      );
      assert.equal(answer.model_name, 's2');
      assert.equal(Number(Buffer.from(answer.raw_output_contents[0]).readBigInt64LE(0)), DIGIT.label);
    } finally {
      client.close();
    }
  });

  it('DEPLOY_UNLOAD releases only that job’s model; DEPLOY_LOAD loads it again; the other job serves throughout', async () => {
    const unloaded = await original(t, 's1', 'DEPLOY_UNLOAD');
    assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
    assert.equal(unloaded.body.state, 'unloaded');
    const endpoint = (await t.store.listServers({ jobId: 's2', kind: 'job' }))[0]!.endpoint!;
    assert.equal(await t.router.workers.isLoaded(endpoint, 's1'), false, 's1 left the worker');
    assert.equal(await t.router.workers.isLoaded(endpoint, 's2'), true, 's2 stayed');
    assert.equal(await inferLabel(t, 's2'), DIGIT.label);
    assert.ok((await running(t)).has(sharedWorker), 'the worker keeps running');

    const loaded = await original(t, 's1', 'DEPLOY_LOAD');
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    assert.equal(loaded.body.state, 'ready');
    assert.equal(loaded.body.placement, 'shared');
    assert.equal(await inferLabel(t, 's1'), DIGIT.label);
  });

  it('TEMP runs on a shared worker without starting a container and leaves nothing behind', async () => {
    const before = await running(t);
    const temp = await original(t, 'tmp1', 'TEMP');
    assert.equal(temp.status, 200, JSON.stringify(temp.body));
    assert.equal(temp.body.result.count, 550);
    assert.ok(temp.body.result.accuracy > 0.9, `accuracy ${temp.body.result.accuracy}`);
    assert.equal(temp.body.state, 'terminated');
    assert.ok(
      !temp.body.steps.some((s: { name: string }) => s.name === 'create'),
      `no container for the TEMP: ${JSON.stringify(temp.body.steps)}`,
    );
    assert.deepEqual([...(await running(t)).keys()].sort(), [...before.keys()].sort());
    const endpoint = (await t.store.listServers({ jobId: 's1', kind: 'job' }))[0]!.endpoint!;
    const entries = await t.router.workers.index(endpoint);
    assert.deepEqual(
      entries
        .filter((e) => e.state === 'READY')
        .map((e) => e.name)
        .sort(),
      ['s1', 's2'],
      'the TEMP’s model left the worker',
    );
  });

  it('TERMINATE removes the job’s model; the worker stays while another job uses it', async () => {
    const terminated = await original(t, 's1', 'TERMINATE');
    assert.equal(terminated.status, 200, JSON.stringify(terminated.body));
    assert.equal(terminated.body.state, 'terminated');
    assert.ok((await running(t)).has(sharedWorker));
    assert.equal(await inferLabel(t, 's2'), DIGIT.label);
    const gone = await postJson(`${t.url}/v2/models/s1/infer`, { inputs: [] });
    assert.equal(gone.status, 404, JSON.stringify(gone.body));
  });

  it('a full worker makes the fleet open another', async () => {
    for (const job of ['s3', 's4']) {
      const created = await original(t, job, 'DEPLOY_CREATE');
      assert.equal(created.status, 200, JSON.stringify(created.body));
      assert.equal(created.body.container_name, sharedWorker, `${job} fits the first worker`);
    }
    const fourth = await original(t, 's5', 'DEPLOY_CREATE');
    assert.equal(fourth.status, 200, JSON.stringify(fourth.body));
    assert.notEqual(fourth.body.container_name, sharedWorker, 'three per worker: a second one opens');
    assert.ok(fourth.body.steps.some((s: { name: string }) => s.name === 'create'));
    const shared = [...(await running(t)).entries()].filter(([, labels]) => labels[LABELS.kind] === 'shared');
    assert.equal(shared.length, 2);
  });

  it('a model that fails to load on a shared worker fails alone; the others on that worker keep serving', async () => {
    const bad = await original(t, 'sbad', 'DEPLOY_CREATE', { model: 'm-bad' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.match(bad.body.error.message, /m-bad.*cannot be loaded/);
    const server = (await t.store.listServers({ jobId: 'sbad', kind: 'job' }))[0]!;
    assert.equal(server.state, 'failed');
    assert.equal(server.placement, 'shared');
    const neighbours = await t.store.listServers({ kind: 'job', states: ['ready'] });
    assert.ok(
      neighbours.some((s) => s.workerName === server.workerName),
      'it was placed beside other jobs',
    );
    for (const job of ['s2', 's3', 's4', 's5']) assert.equal(await inferLabel(t, job), DIGIT.label, job);
    const terminated = await original(t, 'sbad', 'TERMINATE', { model: 'm-bad' });
    assert.equal(terminated.status, 200, JSON.stringify(terminated.body));
  });

  it('MODELDOCK_MAX_SHARED_JOBS: past it DEPLOY_CREATE answers 429 and records nothing', async () => {
    const fifth = await original(t, 's6', 'DEPLOY_CREATE');
    assert.equal(fifth.status, 200, JSON.stringify(fifth.body));
    const jobsBefore = (await t.store.listJobs()).length;
    const serversBefore = (await t.store.listServers()).length;
    const refused = await original(t, 's7', 'DEPLOY_CREATE');
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.match(JSON.stringify(refused.body), /max_shared_jobs|MODELDOCK_MAX_SHARED_JOBS/);
    assert.equal((await t.store.listJobs()).length, jobsBefore, 'the refused job was not recorded');
    assert.equal((await t.store.listServers()).length, serversBefore, 'nor any server');
    const limits = (await getJson(`${t.url}/v1/limits`)).body;
    assert.equal(limits.max_shared_jobs, 5);
    assert.equal(limits.shared_jobs, 5);
    assert.equal(limits.shared_workers, 2);
    assert.equal(limits.live_servers, 3, 'd1 and the two shared workers');
    // A dedicated job is bounded by MODELDOCK_MAX_SERVERS, not by the shared bound.
    const dedicated = await original(t, 'd2', 'DEPLOY_CREATE', { placement: 'dedicated' });
    assert.equal(dedicated.status, 200, JSON.stringify(dedicated.body));
  });

  it('docker kill of a shared worker: every job on it is placed again, none lost or duplicated, requests wait', async () => {
    const jobs = ['s2', 's3', 's4', 's5', 's6'];
    const load = new InferenceLoad(
      t.url,
      jobs.map((job) => ({ job, path: `/v2/models/${job}/infer` })),
      { connections: 2, maxRequests: 1_000_000 },
    ).start();
    await load.answered(20);
    const victims = (await t.store.listServers({ kind: 'job', states: ['ready'] })).filter(
      (s) => s.workerName === sharedWorker,
    );
    assert.equal(victims.length, 3, 's2, s3 and s4 live on the first worker');
    await t.docker.getContainer(sharedWorker).kill();
    const killedAt = performance.now();
    // Each victim goes through failed and comes back ready on a running worker.
    for (const victim of victims) {
      for (;;) {
        const now = await t.store.getServer(victim.serverId);
        if (now!.state === 'ready' && now!.workerName !== sharedWorker && now!.restarts > 0) break;
        assert.ok(performance.now() - killedAt < 120_000, `${victim.jobId} placed again within 2 minutes`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const settledAt = performance.now();
    await load.answered(100);
    const samples = await load.stop();
    const after = samples.filter((s) => s.sentAt > settledAt);
    assert.ok(after.length >= 50);
    assert.deepEqual(
      after.filter((s) => s.status !== 200),
      [],
      failureDigest(after),
    );
    // Only requests already on their way to the dead worker may fail, and only as a lost worker does.
    const failed = samples.filter((s) => s.status !== 200);
    assert.ok(
      failed.every((s) => s.status === 502 || s.status === 503),
      failureDigest(failed),
    );
    // At most a request per connection and job that was on its way when the worker died.
    assert.ok(failed.length <= 2 * victims.length, failureDigest(failed));
    for (const job of jobs) {
      const live = (await t.store.listServers({ jobId: job, kind: 'job' })).filter(
        (s) => s.state !== 'terminated',
      );
      assert.equal(live.length, 1, `${job}: one server, not lost, not duplicated`);
      assert.equal(live[0]!.state, 'ready', job);
      assert.equal(await inferLabel(t, job), DIGIT.label, job);
    }
  });

  it('a router restart finds its shared workers and their models: same containers, nothing loaded again', async () => {
    const before = await running(t);
    const servers = (await t.store.listServers({ kind: 'job', states: ['ready'] })).filter(
      (s) => s.placement === 'shared',
    );
    const loadsBefore = (await t.store.listOperations({ type: 'DEPLOY_LOAD', limit: 1000 })).length;
    await t.stop();
    t = await start();
    for (const server of servers) assert.equal(await inferLabel(t, server.jobId), DIGIT.label, server.jobId);
    assert.deepEqual(
      [...(await running(t)).keys()].sort(),
      [...before.keys()].sort(),
      'no worker opened or closed',
    );
    for (const server of servers) {
      const now = await t.store.getServer(server.serverId);
      assert.equal(now!.state, 'ready');
      assert.equal(now!.workerId, server.workerId, `${server.jobId} is still on its worker`);
    }
    const loadsAfter = (await t.store.listOperations({ type: 'DEPLOY_LOAD', limit: 1000 })).length;
    assert.equal(loadsAfter, loadsBefore, 'no model was loaded again');
  });

  it('the state database lost: a restarted router adopts the models on its shared workers, nothing loaded again', async () => {
    const before = await running(t);
    const servers = (await t.store.listServers({ kind: 'job', states: ['ready'] })).filter(
      (s) => s.placement === 'shared',
    );
    assert.ok(servers.length >= 4);
    await t.stop();
    for (const file of await readdir(dataDir)) {
      if (file.startsWith('modeldock.db')) await rm(path.join(dataDir, file));
    }
    t = await start();
    assert.deepEqual(
      [...(await running(t)).keys()].sort(),
      [...before.keys()].sort(),
      'no worker opened or closed',
    );
    for (const old of servers) {
      const live = (await t.store.listServers({ jobId: old.jobId, kind: 'job' })).filter(
        (s) => s.state !== 'terminated',
      );
      assert.equal(live.length, 1, `${old.jobId}: one record rebuilt, no duplicate`);
      const server = live[0]!;
      assert.equal(server.state, 'ready', old.jobId);
      assert.equal(server.placement, 'shared');
      assert.equal(server.workerName, old.workerName, `${old.jobId} stays on its worker`);
      assert.equal(server.dataset, 'ds-550');
      assert.match(server.reason ?? '', /adopted/);
      assert.equal((await t.store.getJob(old.jobId))?.placement, 'shared');
      assert.equal(await inferLabel(t, old.jobId), DIGIT.label, old.jobId);
    }
    const loads = await t.store.listOperations({ type: 'DEPLOY_LOAD', limit: 1000 });
    assert.deepEqual(loads, [], 'no model was loaded again');
  });
});

describe(
  'shared workers close when they host nothing for MODELDOCK_SHARED_IDLE_MS',
  { timeout: 300_000 },
  () => {
    let t: TestRouter;
    before(async () => {
      t = await startTestRouter({
        instance: uniqueInstance('sharedidle'),
        env: { MODELDOCK_PLACEMENT: 'shared', MODELDOCK_SHARED_IDLE_MS: '1000' },
      });
    });
    after(async () => t?.cleanup());

    it('MODELDOCK_PLACEMENT=shared places a plain request; TERMINATE of the last job closes its worker', async () => {
      const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'i1', model: 'm-131', dataset: 'ds-550' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.server.placement, 'shared');
      const worker = created.body.server.container_name;
      assert.ok((await running(t)).has(worker));
      const terminated = await postJson(`${t.url}/v1/jobs/i1/terminate`, {});
      assert.equal(terminated.status, 200, JSON.stringify(terminated.body));
      const deadline = performance.now() + 60_000;
      while ((await instanceContainers(t.docker, t.instance)).length > 0) {
        assert.ok(performance.now() < deadline, 'the empty shared worker is closed within a minute');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    });
  },
);

describe('a warm-pool worker becomes a shared worker', { timeout: 300_000 }, () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ instance: uniqueInstance('sharedpool'), env: { MODELDOCK_WARM_POOL: '1' } });
    await t.router.lifecycle.pool.whenFull();
  });
  after(async () => t?.cleanup());

  it('the first shared job takes the started pool worker as its shared worker; a reconcile pass keeps it', async () => {
    const pooled = [...(await running(t)).keys()];
    assert.equal(pooled.length, 1, 'one pool worker');
    const ids = new Map(
      (await instanceContainers(t.docker, t.instance)).map((c) => [c.Names[0]!.slice(1), c.Id]),
    );
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'w1',
      model: 'm-131',
      dataset: 'ds-550',
      placement: 'shared',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const server = created.body.server;
    assert.match(server.container_name, /-shared-\d{4,}$/);
    assert.equal(server.container_id, ids.get(pooled[0]!), 'the pool’s started worker, renamed');
    await t.router.reconciler.reconcileAll('test');
    assert.equal(await inferLabel(t, 'w1'), DIGIT.label);
    assert.ok((await running(t)).has(server.container_name), 'the reconciler left it alone');
  });
});
