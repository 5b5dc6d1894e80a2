/**
 * Adopt, never destroy (docs/operations.md#adoption-a-worker-without-a-record): workers
 * that run with this router's labels but have no record — the state database was
 * deleted — are taken back at the next start and keep serving; what cannot be adopted is
 * removed with a record saying why. Real Docker engine, real SQLite file, real workers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import {
  DIGIT_INFER_BODY,
  InferenceLoad,
  failureDigest,
  type LoadSample,
} from '../helpers/inference-load.js';
import { freePort } from '../helpers/ports.js';
import {
  REPO_ROOT,
  instanceContainers,
  postJson,
  removeInstanceContainers,
  startTestRouter,
  uniqueInstance,
  type TestRouter,
} from '../helpers/router.js';

const run = promisify(execFile);

/** The modeldock command itself, on the test's state database. */
function modeldock(dataDir: string, ...args: string[]) {
  return run(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, MODELDOCK_DATABASE: `sqlite:${path.join(dataDir, 'modeldock.db')}` },
  });
}

/** The original DEPLOY_CREATE request for a job (m-131 on ds-550). */
function createJob(t: TestRouter, jobId: string) {
  return postJson(`${t.url}/inference_router/`, {
    job_id: jobId,
    model: 'm-131',
    dataset: 'ds-550',
    operation_type: 'DEPLOY_CREATE',
  });
}

const JOBS = Array.from({ length: 10 }, (_, i) => `adopt${i}`);

/** Container name → id, of the instance's running containers. */
async function runningContainers(t: TestRouter): Promise<Map<string, string>> {
  const listed = await instanceContainers(t.docker, t.instance);
  return new Map(listed.filter((c) => c.State === 'running').map((c) => [c.Names[0]!.slice(1), c.Id]));
}

describe('adoption of workers whose records were lost (Docker)', { timeout: 900_000 }, () => {
  const instance = uniqueInstance('adopt');
  let dataDir: string;
  let port: number;
  let t: TestRouter;
  const start = () => startTestRouter({ instance, dataDir, env: { MODELDOCK_PORT: String(port) } });

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-adopt-'));
    port = await freePort();
    t = await start();
  });
  after(async () => {
    await t?.stop();
    await removeInstanceContainers(t.docker, instance);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('deleting the state database under 10 live workers: 10/10 adopted at the next start, inference keeps working', async () => {
    for (const job of JOBS) {
      const created = await createJob(t, job);
      assert.equal(created.status, 200, JSON.stringify(created.body));
    }
    // One of them unloaded: adoption must tell a loaded worker from one that is not.
    const unloaded = await postJson(`${t.url}/v1/jobs/${JOBS[9]}/unload`, {});
    assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
    const before = await runningContainers(t);
    assert.equal(before.size, JOBS.length);

    const servingJobs = JOBS.slice(0, 9);
    const load = new InferenceLoad(
      t.url,
      servingJobs.map((job) => ({ job, path: `/v2/models/${job}/infer` })),
      { connections: 2, maxRequests: 1_000_000 },
    ).start();
    await load.answered(20);
    const stoppingAt = performance.now();
    await t.stop();
    for (const file of await readdir(dataDir)) {
      if (file.startsWith('modeldock.db')) await rm(path.join(dataDir, file));
    }
    t = await start();
    const listeningAt = performance.now();
    await load.answered(100);
    const samples = await load.stop();

    // Nothing was removed or replaced: the same containers run.
    assert.deepEqual(await runningContainers(t), before);
    const servers = await t.store.listServers();
    assert.equal(servers.length, JOBS.length, 'one record per worker, no duplicate');
    for (const server of servers) {
      assert.equal(
        before.get(server.workerName),
        server.workerId,
        `${server.serverId} is the container it names`,
      );
      assert.match(server.reason ?? '', /adopted/);
      assert.equal(server.model, 'm-131');
      assert.equal(server.dataset, 'ds-550');
      assert.equal(server.state, server.jobId === JOBS[9] ? 'unloaded' : 'ready', server.jobId);
    }
    const adoptions = await t.store.listOperations({ type: 'RECONCILE' });
    assert.equal(adoptions.filter((op) => op.reason === 'adopted' && op.status === 'succeeded').length, 10);
    assert.equal((await t.store.listJobs()).length, JOBS.length, 'the jobs are rebuilt too');

    // Requests while the router was down were refused at the door (its own restart);
    // every request answered by the new router succeeded.
    const answeredByNew = samples.filter((s: LoadSample) => s.sentAt >= listeningAt);
    assert.ok(answeredByNew.length >= 50, `${answeredByNew.length} requests after the restart`);
    const failed = samples.filter(
      (s) => s.status !== 200 && !(s.status === 0 && s.sentAt >= stoppingAt && s.sentAt < listeningAt),
    );
    assert.equal(failed.length, 0, failureDigest(failed));

    // The unloaded one loads again on its own worker; a new job gets a number above the adopted ones.
    const loaded = await postJson(`${t.url}/v1/jobs/${JOBS[9]}/load`, {});
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    assert.equal(loaded.body.server.container_id, before.get(`${instance}-inf-0010`));
    const next = await createJob(t, 'adopt-new');
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.equal(next.body.server_id, 'inf-0011');
  });

  it('a running worker of a model the store does not have is removed, and the record says why', async () => {
    const name = `${instance}-inf-9998`;
    await t.runtime.create({
      name,
      labels: {
        [LABELS.server]: 'inf-9998',
        [LABELS.job]: 'ghost',
        [LABELS.model]: 'no-such-model',
        [LABELS.dataset]: 'ds-550',
        [LABELS.kind]: 'job',
      },
      limits: { memoryBytes: 512 * 1024 ** 2, nanoCpus: 1e9, pids: 128 },
    });
    await t.runtime.start(name);
    const report = await postJson(`${t.url}/v1/reconcile`, {});
    assert.equal(report.status, 200);
    assert.equal(report.body.orphansRemoved, 1, JSON.stringify(report.body));
    assert.equal(report.body.adopted, 0);
    assert.equal(await t.runtime.inspect(name), undefined);
    const [removal] = await t.store.listOperations({ jobId: 'ghost', type: 'RECONCILE' });
    assert.equal(removal?.reason, 'orphan_removed');
    assert.match(
      removal?.warnings.join('\n') ?? '',
      /inf-9998.*model "no-such-model" is not in the model store/,
    );
    assert.equal(await t.store.getServer('inf-9998'), undefined, 'nothing adopted');
  });

  it('restoring an older backup while workers run: adoption and realignment bring the state back in line', async () => {
    const backupFile = path.join(dataDir, 'backup.db');
    const backedUp = await modeldock(dataDir, 'backup', backupFile); // online: the router runs
    assert.match(backedUp.stdout, /backed up/);
    // After the backup: a new job, and an unload the backup does not know.
    const created = await createJob(t, 'after-backup');
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal((await postJson(`${t.url}/v1/jobs/${JOBS[1]}/unload`, {})).status, 200);
    const before = await runningContainers(t);

    await t.stop();
    const restored = await modeldock(dataDir, 'restore', backupFile);
    assert.match(restored.stdout, /restored/);
    t = await start();

    assert.deepEqual(await runningContainers(t), before, 'every live worker kept');
    const adopted = await t.store.currentServer('after-backup');
    assert.equal(adopted?.serverId, created.body.server_id);
    assert.equal(adopted?.workerId, created.body.container_id);
    assert.equal(adopted?.state, 'ready');
    assert.match(adopted?.reason ?? '', /adopted/, 'rebuilt: the backup predates the job');
    const realigned = await t.store.currentServer(JOBS[1]!);
    assert.equal(realigned?.state, 'unloaded', 'the record follows the worker, not the backup');
    assert.match(realigned?.reason ?? '', /realigned/);
    for (const job of ['after-backup', JOBS[2]!]) {
      const answer = await postJson(`${t.url}/v2/models/${job}/infer`, JSON.parse(DIGIT_INFER_BODY));
      assert.equal(answer.status, 200, `${job}: ${JSON.stringify(answer.body)}`);
    }
    const next = await createJob(t, 'after-restore');
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.ok(
      Number(next.body.server_id.slice(4)) > Number(created.body.server_id.slice(4)),
      `${next.body.server_id} comes after the adopted ${created.body.server_id}`,
    );
  });

  it('backup and restore refuse what they cannot do, saying why', async () => {
    const notADatabase = path.join(dataDir, 'not-a-backup.db');
    await writeFile(notADatabase, 'hello');
    await assert.rejects(modeldock(dataDir, 'restore', notADatabase), /cannot restore .* from/);
    await assert.rejects(
      run(
        process.execPath,
        ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts'), 'backup', notADatabase],
        {
          cwd: REPO_ROOT,
          env: { ...process.env, MODELDOCK_DATABASE: 'mongodb://127.0.0.1:1/modeldock' },
        },
      ),
      /use mongodump/,
    );
  });
});
