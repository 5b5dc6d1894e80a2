/**
 * modeldock without Docker: the original requests and routed inference on the process
 * runtime, workers that outlive the router, and a reused pid that is never signalled.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { processStartTime } from '../../src/runtime/process/proc.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import {
  getJson,
  postJson,
  startTestRouter,
  uniqueInstance,
  waitForServer,
  type TestRouter,
} from '../helpers/router.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';

const requests = ORIGIN_REQUESTS;
const record = JSON.parse(
  readFileSync(path.join(DATASETS_DIR, 'ds-550/records.jsonl'), 'utf8').split('\n')[0]!,
);

describe('MODELDOCK_RUNTIME=process', () => {
  let stateDir: string;
  let dataDir: string;
  const instance = uniqueInstance('proc');
  let t: TestRouter;
  const makeRuntime = () =>
    new ProcessRuntime({ instance, stateDir, modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR });

  before(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-proc-state-'));
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-proc-data-'));
    t = await startTestRouter({ instance, dataDir, runtime: makeRuntime });
  });
  after(async () => {
    await t?.stop();
    const runtime = makeRuntime();
    for (const worker of await runtime.list()) await runtime.remove(worker.name);
    await runtime.close();
    await rm(stateDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('runs the five original requests', async () => {
    const states: string[] = [];
    for (const body of requests) {
      const response = await postJson(`${t.url}/inference_router/`, body);
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 400));
      states.push(`${response.body.operation_type}:${response.body.state}`);
      if (response.body.operation_type === 'TEMP') assert.equal(response.body.result.correct, 527);
    }
    assert.deepEqual(states, [
      'DEPLOY_CREATE:ready',
      'DEPLOY_LOAD:ready',
      'DEPLOY_UNLOAD:unloaded',
      'TERMINATE:terminated',
      'TEMP:terminated',
    ]);
    assert.deepEqual(await makeRuntime().list(), [], 'no worker process left');
  });

  it('routes /v2 inference to the worker process and loads an unloaded model on demand', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'p1', model: 'm-131', dataset: 'ds-550' });
    assert.equal(created.status, 201);
    assert.equal((await postJson(`${t.url}/v1/jobs/p1/unload`, {})).body.server.state, 'unloaded');
    const infer = await postJson(`${t.url}/v2/models/p1/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
      outputs: [{ name: 'label' }],
    });
    assert.equal(infer.status, 200, JSON.stringify(infer.body));
    assert.deepEqual(infer.body.outputs[0].data, [record.label]);
    const job = await getJson(`${t.url}/v1/jobs/p1`);
    assert.equal(job.body.state, 'ready');
  });

  it('workers outlive the router and are adopted by the next one', async () => {
    const before = (await getJson(`${t.url}/v1/jobs/p1`)).body.server;
    await t.stop();
    t = await startTestRouter({ instance, dataDir, runtime: makeRuntime });
    const after = (await getJson(`${t.url}/v1/jobs/p1`)).body.server;
    assert.equal(after.state, 'ready');
    assert.equal(after.container_id, before.container_id, 'the same process (pid and start time)');
    const infer = await postJson(`${t.url}/v1/jobs/p1/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
    });
    assert.equal(infer.status, 200);
  });

  it('a worker process that dies is noticed and restarted', async () => {
    const server = (await getJson(`${t.url}/v1/jobs/p1`)).body.server;
    const pid = Number(server.container_id.split(':')[1]);
    process.kill(pid, 'SIGKILL');
    // The reconciler notices the exit and restarts it: wait on the router's events.
    const current = await waitForServer(
      t.router,
      server.server_id,
      (s) => s.state === 'ready' && s.restarts === 1 && s.workerId !== server.container_id,
      20_000,
    );
    assert.equal(current.state, 'ready');
    assert.equal(current.restarts, 1);
    assert.notEqual(current.workerId, server.container_id, 'a new process');
  });

  it('runs a job of two replicas as two processes, balances over them, and both survive a router restart', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'p2',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 2, max: 2 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body).slice(0, 400));
    const pids = created.body.servers.map((s: { container_id: string }) => s.container_id);
    assert.equal(new Set(pids).size, 2, 'two worker processes');
    const body = {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
    };
    for (let i = 0; i < 20; i++)
      assert.equal((await postJson(`${t.url}/v2/models/p2/infer`, body)).status, 200);
    await t.stop();
    t = await startTestRouter({ instance, dataDir, runtime: makeRuntime });
    const job = (await getJson(`${t.url}/v1/jobs/p2`)).body;
    assert.deepEqual(job.replicas, { min: 2, max: 2, desired: 2, ready: 2, scale_target: null });
    assert.deepEqual(
      job.servers.map((s: { container_id: string }) => s.container_id),
      pids,
      'the same two processes, adopted',
    );
    assert.equal((await postJson(`${t.url}/v2/models/p2/infer`, body)).status, 200);
    const terminated = await postJson(`${t.url}/v1/jobs/p2/terminate`, {});
    assert.deepEqual(
      terminated.body.servers.map((s: { state: string }) => s.state),
      ['terminated', 'terminated'],
    );
  });

  it('never signals a process that merely reuses a recorded pid', async () => {
    const bystander = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const startTime = await processStartTime(bystander.pid!);
      const dir = path.join(stateDir, instance);
      await mkdir(dir, { recursive: true });
      // A state file claiming the bystander's pid, with another start time (a reused pid).
      await writeFile(
        path.join(dir, `${instance}-inf-0999.json`),
        JSON.stringify({
          name: `${instance}-inf-0999`,
          labels: {
            'modeldock.managed': 'true',
            'modeldock.instance': instance,
            'modeldock.server': 'inf-0999',
          },
          limits: { memoryBytes: 1, nanoCpus: 1, pids: 1 },
          env: {},
          status: 'running',
          port: 1,
          pid: bystander.pid,
          startTime: String(Number(startTime) - 1),
          exitCode: null,
          error: null,
          enforcedLimits: [],
          createdAt: new Date().toISOString(),
          startedAt: new Date().toISOString(),
          finishedAt: null,
        }),
      );
      const runtime = makeRuntime();
      const info = await runtime.inspect(`${instance}-inf-0999`);
      assert.equal(info?.running, false, 'not ours');
      await runtime.stop(`${instance}-inf-0999`);
      await runtime.remove(`${instance}-inf-0999`);
      // The reconciler's orphan pass too.
      await t.router.reconciler.reconcileAll('test');
      await runtime.close();
      assert.equal(bystander.exitCode, null);
      assert.equal(bystander.signalCode, null);
      assert.equal(await processStartTime(bystander.pid!), startTime, 'still alive');
    } finally {
      bystander.kill();
    }
  });
});
