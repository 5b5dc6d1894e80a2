/**
 * A warm pool of foreign servers (MODELDOCK_WARM_POOL=mlserver=1), the same on every
 * runtime that runs them (process: runtime-pool.test.ts; Docker:
 * runtime-pool-docker.test.ts): an idle MLServer started with an empty repository is
 * taken by DEPLOY_CREATE and by TEMP of a model MLServer serves (the job's model linked in
 * by its guard, then loaded), serves the same predictions as MLServer called directly,
 * and is replaced; the pool fills only the room MODELDOCK_MAX_SERVERS leaves; a pooled
 * server that holds a model is never handed over; a killed idle one is replaced; and a
 * restarted router adopts the job's server and starts a fresh pool.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { LABELS, type WorkerInfo } from '../../src/runtime/runtime.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { REPO_ROOT, getJson, postJson, type TestRouter } from '../helpers/router.js';
import { assertRoutedAsDirect, workerSecretHeader } from '../helpers/scratch-router.js';

/** The original requests on m-132 (MLServer's), for job `job`. */
function request(index: number, job: string): string {
  return ORIGIN_REQUESTS[index]!.replace('"m-131"', '"m-132"').replace('"a1"', `"${job}"`);
}

/** The router's configuration the scenario needs: one pooled MLServer, at most two servers. */
export const POOL_ENV = { MODELDOCK_WARM_POOL: 'mlserver=1', MODELDOCK_MAX_SERVERS: '2' };

export interface PoolTarget {
  /** A router serving the example store's m-132 with POOL_ENV. */
  start(): Promise<TestRouter>;
  /** Stop it and start another on its database and workers. */
  restart(t: TestRouter): Promise<TestRouter>;
  stop(t: TestRouter): Promise<void>;
  /** Kill a worker as a crash would. */
  kill(t: TestRouter, name: string): Promise<void>;
  /** What the runtime must show of an idle pooled server (its container, its process). */
  checkPooled?(t: TestRouter, worker: WorkerInfo): Promise<void>;
  /**
   * Leave out the pool's rules that are the lifecycle's alone, the same code whatever runs
   * the servers (the MODELDOCK_MAX_SERVERS bound, TEMP, reuse): one runtime tests them, the
   * others what they do themselves (the container, the link, a death seen, adoption), to
   * keep CI short.
   */
  runtimeOnly?: boolean;
}

export function runPoolScenario(runtime: string, target: PoolTarget): void {
  describe(`a warm pool of MLServers (${runtime})`, { timeout: 400_000 }, () => {
    let t: TestRouter;
    /** Idle pooled MLServers (a handed-over one keeps the pool's labels, not its name). */
    const pooled = async () =>
      (await t.runtime.list()).filter(
        (w) =>
          w.labels[LABELS.kind] === 'pool' &&
          w.labels[LABELS.servingRuntime] === 'mlserver' &&
          w.name.startsWith(`${t.instance}-pool-mlserver-`),
      );
    const mlserverPool = async () =>
      (await getJson(`${t.url}/v1/pool`)).body.runtimes.find(
        (p: { runtime: string }) => p.runtime === 'mlserver',
      );
    /** The pool's one idle server, once the pool is full. */
    const idleServer = async () => {
      await t.router.lifecycle.pool.whenFull();
      const idle = await pooled();
      assert.equal(idle.length, 1, JSON.stringify(idle.map((w) => w.name)));
      return idle[0]!;
    };

    before(async () => {
      t = await target.start();
    });
    after(async () => {
      if (t) await target.stop(t);
    });

    it('holds an idle MLServer, started with an empty repository', async () => {
      const server = await idleServer();
      assert.ok(server.running && server.endpoint);
      const index = await postJson(
        `${server.endpoint}/v2/repository/index`,
        {},
        workerSecretHeader(t.runtime, server.endpoint),
      );
      assert.equal(index.status, 200);
      assert.deepEqual(index.body, [], 'no model in its repository');
      assert.deepEqual(
        (({ size, limit, ready, bounded_by }) => ({ size, limit, ready, bounded_by }))(await mlserverPool()),
        { size: 1, limit: 1, ready: 1, bounded_by: null },
      );
      await target.checkPooled?.(t, server);
      // The modeldock command lists it too, a row per serving runtime's pool.
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts'), 'pool'],
        { cwd: REPO_ROOT, env: { ...process.env, MODELDOCK_URL: t.url, NO_COLOR: '1' }, timeout: 60_000 },
      );
      assert.match(stdout, /^mlserver\s+1\s+1\s+1\s+0\s/m, stdout);
    });

    it('DEPLOY_CREATE takes it: the model linked in and loaded, no server start, same predictions as MLServer direct', async () => {
      const server = await idleServer();
      const response = await postJson(`${t.url}/inference_router/`, request(0, 'p1'));
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
      assert.equal(response.body.state, 'ready');
      assert.deepEqual(
        response.body.steps.map((s: { name: string }) => s.name),
        ['record', 'create', 'wait_ready', 'link', 'load'],
      );
      const job = (await t.runtime.list()).find((w) => w.name === response.body.container_name)!;
      assert.equal(job.id, server.id, 'the pooled server itself, renamed');
      assert.equal(job.labels[LABELS.servingRuntime], 'mlserver');
      for (const i of [0, 1, 2]) await assertRoutedAsDirect(t, job.endpoint!, 'p1', i);
    });

    if (!target.runtimeOnly) {
      it('refills, but only into the room MODELDOCK_MAX_SERVERS leaves', async () => {
        const first = await idleServer();
        const second = await postJson(`${t.url}/inference_router/`, request(0, 'p2'));
        assert.equal(second.status, 200, JSON.stringify(second.body).slice(0, 800));
        assert.ok(!second.body.steps.some((s: { name: string }) => s.name === 'start'));
        assert.equal(
          (await t.runtime.list()).find((w) => w.name === second.body.container_name)?.id,
          first.id,
        );
        await t.router.lifecycle.pool.whenFull();
        const bounded = await mlserverPool();
        assert.deepEqual(
          { limit: bounded.limit, ready: bounded.ready, bounded_by: bounded.bounded_by },
          { limit: 0, ready: 0, bounded_by: 'max_servers' },
          'two live servers: MODELDOCK_MAX_SERVERS=2 leaves no room for an idle one',
        );
        assert.equal((await t.runtime.list()).length, 2);
        const terminated = await postJson(`${t.url}/inference_router/`, request(3, 'p2'));
        assert.equal(terminated.body.state, 'terminated');
        const refilled = await idleServer();
        assert.notEqual(refilled.id, first.id);
      });

      it('TEMP takes one too, reports the accuracy, and the pool refills', async () => {
        const server = await idleServer();
        const response = await postJson(`${t.url}/inference_router/`, request(4, 't1'));
        assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
        assert.equal(response.body.result.count, 550);
        assert.equal(response.body.result.correct, 528);
        const steps = response.body.steps.map((s: { name: string }) => s.name);
        assert.ok(steps.includes('link') && !steps.includes('start'), steps.join());
        assert.equal(
          (await t.runtime.inspect(server.name)) ?? undefined,
          undefined,
          'taken and removed after',
        );
        const refilled = await idleServer();
        assert.notEqual(refilled.id, server.id);
        assert.equal((await t.runtime.list()).length, 2, 'job p1 and the idle server');
      });

      it('a pooled server that holds a model is not handed to a job: it is removed and a server started', async () => {
        const server = await idleServer();
        // Something with its secret loaded a model into it behind the router's back.
        const secret = workerSecretHeader(t.runtime, server.endpoint!);
        const link = await fetch(`${server.endpoint}/modeldock/repository/other`, {
          method: 'PUT',
          headers: { ...secret, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'm-132' }),
        });
        assert.equal(link.status, 200, await link.text());
        const load = await postJson(`${server.endpoint}/v2/repository/models/other/load`, {}, secret);
        assert.equal(load.status, 200, JSON.stringify(load.body));

        const response = await postJson(`${t.url}/inference_router/`, request(0, 'p3'));
        assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
        const steps = response.body.steps.map((s: { name: string }) => s.name);
        assert.deepEqual(steps, ['record', 'create', 'start', 'wait_ready', 'load'], 'a server of its own');
        assert.equal(await t.runtime.inspect(server.name), undefined, 'the server that held a model is gone');
        const job = (await t.runtime.list()).find((w) => w.name === response.body.container_name)!;
        assert.notEqual(job.id, server.id);
        await assertRoutedAsDirect(t, job.endpoint!, 'p3', 4);
        assert.equal(
          (await postJson(`${t.url}/inference_router/`, request(3, 'p3'))).body.state,
          'terminated',
        );
      });
    }

    it('a killed idle server is replaced', async () => {
      const server = await idleServer();
      await target.kill(t, server.name);
      const deadline = Date.now() + 120_000;
      for (;;) {
        const idle = (await pooled()).filter((w) => w.running && w.id !== server.id);
        if (idle.length === 1 && (await mlserverPool()).ready === 1) break;
        assert.ok(Date.now() < deadline, 'no new idle server within 120 s');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(await t.runtime.inspect(server.name), undefined, 'the killed one is removed');
    });

    it('a restarted router adopts the job on its pooled server and starts a fresh pool', async () => {
      const job = (await t.runtime.list()).find((w) => w.name.endsWith('-inf-0001'))!;
      const idle = await idleServer();
      t = await target.restart(t);
      const fresh = await idleServer();
      assert.notEqual(fresh.id, idle.id, 'the earlier router’s idle server is replaced');
      assert.equal((await t.runtime.inspect(idle.name)) ?? undefined, undefined);
      assert.equal((await getJson(`${t.url}/v1/jobs/p1`)).body.state, 'ready');
      assert.equal((await t.runtime.inspect(job.name))?.id, job.id, 'the same server, adopted');
      await assertRoutedAsDirect(t, job.endpoint!, 'p1', 5);
      assert.equal((await postJson(`${t.url}/inference_router/`, request(3, 'p1'))).body.state, 'terminated');
    });
  });
}
