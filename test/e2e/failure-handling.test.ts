/**
 * What a chaos run found (issue #28), each on the real Docker engine: an unloaded job
 * whose worker dies still loads on demand; the restart budget is a crash-loop detector
 * (it renews after a healthy period and on an operator's DEPLOY_LOAD); a container removed
 * with `docker rm -f` is recreated, and says so; a `failed` record whose worker runs and
 * answers (a router killed during DEPLOY_LOAD of a stopped worker) follows the engine;
 * and every one of these reaches the log as a warning or an error, with job, server and
 * reason.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import type { ServerRecord } from '../../src/store/records.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { DIGITS } from '../helpers/fixtures.js';
import {
  LogCapture,
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  uniqueInstance,
  waitForServer,
  type TestRouter,
} from '../helpers/router.js';

/** Generous on a busy 2-CPU machine: a restart is a container start, a boot and a load. */
const RESTART_MS = 45_000;
/**
 * Longer than a restart takes even on a loaded machine: deaths a test means to be in a row
 * must come before a worker has run this long (a 6 s window renewed the budget under load).
 */
const HEALTHY_MS = 20_000;

const ONE_DIGIT = {
  inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
};

async function createJob(t: TestRouter, jobId: string) {
  const response = await postJson(`${t.url}/v1/jobs`, { job_id: jobId, model: 'm-131', dataset: 'ds-550' });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.server as { server_id: string; container_id: string; container_name: string };
}

async function currentServer(t: TestRouter, jobId: string) {
  return (await getJson(`${t.url}/v1/jobs/${jobId}`)).body.server as {
    server_id: string;
    container_id: string;
    container_name: string;
    state: string;
    restarts: number;
  };
}

function infer(t: TestRouter, jobId: string) {
  return postJson(`${t.url}/v2/models/${jobId}/infer`, ONE_DIGIT);
}

/** Kill the job's worker and wait until the reconciler has brought it back to `state`. */
async function killAndAwaitRestart(t: TestRouter, jobId: string, state: string): Promise<ServerRecord> {
  const before = await currentServer(t, jobId);
  const failed = waitForServer(t.router, before.server_id, (s) => s.state === 'failed', RESTART_MS);
  await t.docker.getContainer(before.container_id).kill({ signal: 'SIGKILL' });
  await failed;
  return waitForServer(t.router, before.server_id, (s) => s.state === state, RESTART_MS);
}

/** Sleep until the job's worker has been running for `ms` by the engine's clock. */
async function runHealthyFor(t: TestRouter, containerId: string, ms: number): Promise<void> {
  const startedAt = Date.parse((await t.docker.getContainer(containerId).inspect()).State.StartedAt);
  const left = startedAt + ms + 500 - Date.now();
  // The healthy period is the condition itself: nothing but time passing tells it.
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
}

describe('failure handling (issue #28)', { timeout: 600_000 }, () => {
  let t: TestRouter;
  const log = new LogCapture();
  before(async () => {
    t = await startTestRouter({
      log,
      env: {
        MODELDOCK_RESTART_LIMIT: '2',
        MODELDOCK_RESTART_BACKOFF_MS: '100',
        MODELDOCK_RESTART_RESET_MS: String(HEALTHY_MS),
      },
    });
  });
  after(async () => {
    await t?.cleanup();
  });

  it('an unloaded job whose worker dies loads on demand at the next inference (no 409)', async () => {
    const server = await createJob(t, 'u1');
    assert.equal((await postJson(`${t.url}/v1/jobs/u1/unload`, {})).status, 200);
    const failed = waitForServer(t.router, server.server_id, (s) => s.state === 'failed', 10_000);
    await t.docker.getContainer(server.container_id).stop({ t: 1 });
    const marked = await failed;
    const answer = await infer(t, 'u1');
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.match(marked.reason ?? '', /worker exited with code \d+; restarting \(attempt 1 of 2\)/);
    assert.equal((await currentServer(t, 'u1')).state, 'ready');
    // The restart brought the worker back without the model (recorded as such); the
    // inference loaded it on demand.
    const ops = (await getJson(`${t.url}/v1/operations?job_id=u1`)).body.operations as Array<{
      type: string;
      reason: string;
      status: string;
    }>;
    assert.ok(
      ops.some((op) => op.type === 'DEPLOY_UNLOAD' && op.reason === 'restart' && op.status === 'succeeded'),
      JSON.stringify(ops),
    );
    assert.ok(
      ops.some((op) => op.type === 'DEPLOY_LOAD' && op.reason === 'on_demand'),
      JSON.stringify(ops),
    );

    // The death and the restart reached the log, with job, server and reason.
    const died = log.warnings(/^worker died; restarting/).find((line) => line.jobId === 'u1');
    assert.ok(died, 'a warning for the death');
    assert.equal(died.serverId, server.server_id);
    assert.match(String(died.reason), /exited with code/);
    assert.ok(
      log.warnings(/^worker restarted/).some((line) => line.jobId === 'u1'),
      'a warning for the restart',
    );
    assert.ok(
      log.warnings(/^server marked failed/).some((line) => line.serverId === server.server_id),
      'a warning for the server marked failed',
    );
  });

  it('an operator DEPLOY_LOAD renews the restart budget', async () => {
    const server = await createJob(t, 'b1');
    await killAndAwaitRestart(t, 'b1', 'ready');
    const second = await killAndAwaitRestart(t, 'b1', 'ready');
    assert.equal(second.restarts, 2);

    // The third death in a row is a crash loop: left failed, said at error level.
    const current = await currentServer(t, 'b1');
    const limited = waitForServer(
      t.router,
      server.server_id,
      (s) => s.state === 'failed' && /restart limit/.test(s.reason ?? ''),
      RESTART_MS,
    );
    await t.docker.getContainer(current.container_id).kill({ signal: 'SIGKILL' });
    assert.match((await limited).reason!, /exited with code 137; restart limit \(2\) reached/);
    assert.equal((await infer(t, 'b1')).status, 409);
    const limitLine = log.lines.find((line) => line.jobId === 'b1' && /restart limit/.test(line.msg));
    assert.ok(limitLine, 'the restart limit is logged');
    assert.equal(limitLine.level, 50, 'at error level');
    assert.equal(limitLine.serverId, server.server_id);
    assert.match(String(limitLine.reason), /exited with code 137/);

    // The operator's DEPLOY_LOAD is a fresh start: the next single death is restarted.
    const loaded = await postJson(`${t.url}/v1/jobs/b1/load`, {});
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    assert.equal(loaded.body.server.restarts, 0);
    const again = await killAndAwaitRestart(t, 'b1', 'ready');
    assert.equal(again.restarts, 1);
    assert.equal((await infer(t, 'b1')).status, 200);
  });

  it('a worker that ran healthily for MODELDOCK_RESTART_RESET_MS gets a fresh budget', async () => {
    await createJob(t, 'h1');
    const first = await killAndAwaitRestart(t, 'h1', 'ready');
    assert.equal(first.restarts, 1);
    const second = await killAndAwaitRestart(t, 'h1', 'ready');
    assert.equal(second.restarts, 2, 'deaths in a row count');
    await runHealthyFor(t, second.workerId!, HEALTHY_MS);
    // Two deaths so far; a third in a row would be the limit. After a healthy period it
    // counts as the first again, and is restarted at once (no back-off carried over).
    const renewed = await killAndAwaitRestart(t, 'h1', 'ready');
    assert.equal(renewed.restarts, 1);
    assert.ok(
      log
        .warnings(/^worker died; restarting/)
        .some((line) => line.jobId === 'h1' && line.budgetRenewed === true),
      'the renewal is logged',
    );
    assert.equal((await infer(t, 'h1')).status, 200);
  });

  it('a restart whose new worker dies while it boots is tried again within the budget', async () => {
    const server = await createJob(t, 'd1');
    // The restart's worker is killed as soon as it is started (the server goes `loading`),
    // long before it can boot and load: the restart itself fails.
    const restarting = waitForServer(
      t.router,
      server.server_id,
      (s) => s.state === 'loading' && s.restarts === 1,
      RESTART_MS,
    );
    await t.docker.getContainer(server.container_id).kill({ signal: 'SIGKILL' });
    const started = await restarting;
    await t.docker.getContainer(started.workerId!).kill({ signal: 'SIGKILL' });
    const ready = await waitForServer(t.router, server.server_id, (s) => s.state === 'ready', RESTART_MS);
    assert.equal(ready.restarts, 2, 'the failed restart counts as a death in a row');
    assert.ok(
      log.warnings(/^restart failed; restarting it again/).some((line) => line.serverId === server.server_id),
      'the failed restart is logged',
    );
    assert.equal((await infer(t, 'd1')).status, 200);
  });

  it('docker rm -f of a ready worker: recreated, and the reason says the container vanished', async () => {
    const server = await createJob(t, 'r1');
    const failed = waitForServer(t.router, server.server_id, (s) => s.state === 'failed', 10_000);
    await t.docker.getContainer(server.container_id).remove({ force: true });
    assert.match((await failed).reason ?? '', /container vanished/);
    const ready = await waitForServer(t.router, server.server_id, (s) => s.state === 'ready', RESTART_MS);
    assert.notEqual(ready.workerId, server.container_id, 'a new container');
    const containers = await instanceContainers(t.docker, t.instance);
    assert.equal(containers.filter((c) => c.Labels[LABELS.job] === 'r1').length, 1, 'exactly one');
    assert.equal((await infer(t, 'r1')).status, 200);
  });

  it('docker rm -f of an unloaded job worker: recreated unloaded, the reason truthful, inference loads it', async () => {
    const server = await createJob(t, 'r2');
    assert.equal((await postJson(`${t.url}/v1/jobs/r2/unload`, {})).status, 200);
    const failed = waitForServer(t.router, server.server_id, (s) => s.state === 'failed', 10_000);
    await t.docker.getContainer(server.container_id).remove({ force: true });
    const marked = await failed;
    assert.match(marked.reason ?? '', /container vanished/);
    assert.doesNotMatch(marked.reason ?? '', /exited with code/);
    const back = await waitForServer(t.router, server.server_id, (s) => s.state === 'unloaded', RESTART_MS);
    assert.notEqual(back.workerId, server.container_id, 'a new container');
    assert.equal((await infer(t, 'r2')).status, 200);
  });

  it('a worker that does not answer: 502, logged with job, server and reason', async () => {
    const server = await createJob(t, 'p1');
    const container = t.docker.getContainer(server.container_id);
    assert.equal((await infer(t, 'p1')).status, 200);
    // A frozen worker takes the request (its socket is open) and never answers; killed
    // then, it cuts the connection. The batch is large (megabytes of JSON), so the worker
    // cannot answer it in the moment the engine thaws it to deliver the kill.
    const rows = 20_000;
    const big = {
      inputs: [
        {
          name: 'pixels',
          shape: [rows, 64],
          datatype: 'FP32',
          data: Array.from({ length: rows }, (_, i) => DIGITS[i % DIGITS.length]!.inputs.pixels),
        },
      ],
    };
    await container.pause();
    const pending = postJson(`${t.url}/v2/models/p1/infer`, big);
    const route = t.router.lifecycle.tryAcquireRoute('p1');
    assert.ok(route, 'the job has its route');
    try {
      const deadline = Date.now() + 10_000;
      // The request counts on the route once the router took it (no event says so).
      while (route.inFlight < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(route.inFlight >= 2, 'the request reached the route');
    } finally {
      route.release();
    }
    await container.kill({ signal: 'SIGKILL' });
    const answer = await pending;
    assert.equal(answer.status, 502, JSON.stringify(answer.body).slice(0, 500));
    const line = log.warnings(/did not answer/).find((l) => l.jobId === 'p1');
    assert.ok(line, 'the 502 is logged');
    assert.equal(line.serverId, server.server_id);
    assert.ok(line.err, 'with the reason');
    await waitForServer(
      t.router,
      server.server_id,
      (s) => s.state === 'ready' && s.restarts === 1,
      RESTART_MS,
    );
  });
});

describe(
  'a failed record whose worker runs (router killed during DEPLOY_LOAD of a stopped worker)',
  {
    timeout: 300_000,
  },
  () => {
    const instance = uniqueInstance('f28');
    let first: TestRouter | undefined;
    let second: TestRouter | undefined;
    after(async () => {
      await first?.cleanup();
      await second?.cleanup();
    });

    it('converges to the running, answering worker: inference serves again without DEPLOY_LOAD', async () => {
      // No restarts: a stopped worker leaves its server failed, as past the restart limit.
      first = await startTestRouter({ instance, env: { MODELDOCK_RESTART_LIMIT: '0' } });
      const server = await createJob(first, 'f1');
      const failed = waitForServer(first.router, server.server_id, (s) => s.state === 'failed', 10_000);
      await first.docker.getContainer(server.container_id).stop({ t: 1 });
      assert.match((await failed).reason ?? '', /restart limit \(0\) reached/);
      assert.equal((await infer(first, 'f1')).status, 409);

      // DEPLOY_LOAD's `start` step ran, then the router died before it recorded anything:
      // the record still says failed, the container runs.
      await first.stop();
      await first.docker.getContainer(server.container_id).start();
      second = await startTestRouter({
        instance,
        dataDir: first.dataDir,
        env: { MODELDOCK_RESTART_LIMIT: '0' },
      });
      const settled = await waitForServer(
        second.router,
        server.server_id,
        (s) => ['ready', 'unloaded'].includes(s.state),
        30_000,
      );
      assert.equal(settled.state, 'unloaded', 'the model was not loaded yet');
      const answer = await infer(second, 'f1');
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const containers = await instanceContainers(second.docker, instance);
      assert.equal(containers.length, 1, 'no second worker');
    });

    it('and while the router runs, the periodic pass does the same', async () => {
      const t = second!;
      const server = await currentServer(t, 'f1');
      const failed = waitForServer(t.router, server.server_id, (s) => s.state === 'failed', 10_000);
      await t.docker.getContainer(server.container_id).stop({ t: 1 });
      await failed;
      // Started by hand, as a killed router's start step leaves it; the engine's start event
      // is not what the reconciler waits for, its safety-net pass is.
      await t.docker.getContainer(server.container_id).start();
      const settled = await waitForServer(
        t.router,
        server.server_id,
        (s) => ['ready', 'unloaded'].includes(s.state),
        30_000,
      );
      assert.ok(['ready', 'unloaded'].includes(settled.state), settled.state);
      assert.equal((await infer(t, 'f1')).status, 200);
    });
  },
);

describe('a restart that a killed router decided but never ran', { timeout: 300_000 }, () => {
  const instance = uniqueInstance('f28r');
  let first: TestRouter | undefined;
  let second: TestRouter | undefined;
  after(async () => {
    await first?.cleanup();
    await second?.cleanup();
  });

  it('is run by the next router: the job serves again', async () => {
    first = await startTestRouter({ instance });
    const server = await createJob(first, 'g1');
    await first.stop();
    // What a router killed right after it marked the dead worker for a restart leaves.
    await first.docker.getContainer(server.container_id).kill({ signal: 'SIGKILL' });
    const store = new SqliteStore(path.join(first.dataDir, 'modeldock.db'));
    await store.init();
    try {
      const record = (await store.getServer(server.server_id))!;
      await store.updateServer(record.serverId, record.version, {
        state: 'failed',
        reason: 'worker exited with code 137; restarting (attempt 1 of 3)',
        restarts: 1,
        endpoint: null,
      });
    } finally {
      await store.close();
    }
    second = await startTestRouter({ instance, dataDir: first.dataDir });
    const ready = await waitForServer(
      second.router,
      server.server_id,
      (s) => s.state === 'ready',
      RESTART_MS,
    );
    assert.equal(ready.restarts, 1, 'the restart it announced, not another');
    assert.equal((await infer(second, 'g1')).status, 200);
  });
});
