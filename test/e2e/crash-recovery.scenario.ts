/**
 * Crash safety of every operation, on any runtime: the router is killed with SIGKILL at
 * a random point of DEPLOY_CREATE, DEPLOY_LOAD, DEPLOY_UNLOAD, TERMINATE or TEMP, started
 * again on the same store, and the store is checked against the runtime's own view (the
 * engine's containers, the cluster's Pods): no orphan worker, no duplicate server, no
 * record pointing at nothing, no operation left running. crash-recovery.test.ts runs it
 * on Docker, kubernetes-crash-recovery.test.ts on the Kubernetes test cluster.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getJson, postJson, uniqueInstance } from '../helpers/router.js';
import { ownRouterEnv, spawnRouter, type RouterProcess } from '../helpers/router-process.js';
import { SeededRandom } from '../helpers/seeded-random.js';

export const OPERATIONS = ['DEPLOY_CREATE', 'DEPLOY_LOAD', 'DEPLOY_UNLOAD', 'TERMINATE', 'TEMP'] as const;
export type Operation = (typeof OPERATIONS)[number];

/** A worker as the runtime's own source of truth sees it (not through the router). */
export interface ObservedWorker {
  name: string;
  running: boolean;
  /** The runtime's word for its state, for messages. */
  state: string;
}

export interface CrashBackend {
  /** The router's environment for this runtime (MODELDOCK_RUNTIME and its settings). */
  env: Record<string, string>;
  trials: number;
  /**
   * Kill points are drawn from [0, window): about each operation's duration on this
   * runtime (see its step timings), so the kill lands inside the operation most of the time.
   */
  killWindowMs: Record<Operation, number>;
  /** Every worker of the instance, straight from the engine or cluster. */
  workers(instance: string): Promise<ObservedWorker[]>;
  cleanup(instance: string): Promise<void>;
}

export function runCrashRecovery(runtimeName: string, backend: CrashBackend): void {
  const TRIALS = backend.trials;
  const KILL_WINDOW_MS = backend.killWindowMs;
  describe(`router on ${runtimeName} killed with SIGKILL at random points (${TRIALS} trials)`, () => {
    const instance = uniqueInstance('crash');
    let dataDir: string;
    let env: Record<string, string>;
    let router: RouterProcess | undefined;
    const figures: Record<Operation, { trials: number; interrupted: number; completed: number }> =
      Object.fromEntries(OPERATIONS.map((op) => [op, { trials: 0, interrupted: 0, completed: 0 }])) as never;

    before(async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-crash-'));
      env = {
        ...ownRouterEnv(instance, dataDir),
        MODELDOCK_LOG_LEVEL: 'info',
        ...backend.env,
      };
    });

    after(async () => {
      await router?.kill();
      await backend.cleanup(instance);
      console.log(`# crash trials: ${JSON.stringify(figures)}`);
      if (!process.env.MODELDOCK_KEEP_TEST_DATA) await rm(dataDir, { recursive: true, force: true });
    });

    async function start() {
      router = await spawnRouter(env, path.join(dataDir, 'router.log'));
      return router.url;
    }

    async function send(url: string, jobId: string, operation: Operation) {
      return postJson(`${url}/inference_router/`, {
        job_id: jobId,
        model: 'm-131',
        dataset: 'ds-550',
        operation_type: operation,
      });
    }

    /** Store and engine agree: the whole point of the exercise. */
    async function checkConsistency(url: string, trial: string) {
      const running = (await getJson(`${url}/v1/operations?status=running`)).body.operations;
      assert.deepEqual(running, [], `${trial}: operations left running`);
      const servers = (await getJson(`${url}/v1/servers`)).body.servers as any[];
      const byName = new Map((await backend.workers(instance)).map((w) => [w.name, w]));
      const live = new Map<string, string>();
      for (const s of servers) {
        assert.ok(
          !['creating', 'loading', 'unloading', 'terminating'].includes(s.state),
          `${trial}: ${s.server_id} left ${s.state}`,
        );
        const container = byName.get(s.container_name);
        if (s.state === 'terminated') {
          assert.equal(container, undefined, `${trial}: terminated ${s.server_id} still has a container`);
          continue;
        }
        assert.equal(s.kind, 'job', `${trial}: temp server ${s.server_id} outlived its operation`);
        assert.ok(!live.has(s.job_id), `${trial}: two live servers for job ${s.job_id}`);
        live.set(s.job_id, s.server_id);
        if (s.state === 'ready' || s.state === 'unloaded') {
          assert.equal(
            container?.running,
            true,
            `${trial}: ${s.server_id} is ${s.state} but its worker is ${container?.state ?? 'missing'}`,
          );
        }
      }
      const known = new Set(servers.filter((s) => s.state !== 'terminated').map((s) => s.container_name));
      for (const name of byName.keys()) assert.ok(known.has(name), `${trial}: orphan container ${name}`);
    }

    it('leaves nothing the next start cannot finish or roll back', async () => {
      // Deterministic kill points, so a failing trial can be replayed.
      const random = new SeededRandom(Number(process.env.MODELDOCK_CRASH_SEED ?? 131));
      let url = await start();
      for (let i = 0; i < TRIALS; i++) {
        const operation = OPERATIONS[i % OPERATIONS.length]!;
        const jobId = `j${i}`;
        // Bring the job into the state the operation starts from.
        if (operation !== 'DEPLOY_CREATE' && operation !== 'TEMP') {
          assert.equal((await send(url, jobId, 'DEPLOY_CREATE')).status, 200);
          if (operation === 'DEPLOY_LOAD')
            assert.equal((await send(url, jobId, 'DEPLOY_UNLOAD')).status, 200);
        }
        const delayMs = Math.floor(random.next() * KILL_WINDOW_MS[operation]);
        const pending = send(url, jobId, operation).then(
          (r) => r.status,
          () => 'cut',
        );
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        await router!.kill('SIGKILL');
        const outcome = await pending;
        figures[operation].trials++;
        figures[operation][outcome === 200 ? 'completed' : 'interrupted']++;

        url = await start();
        const trial = `trial ${i} (${operation}, killed after ${delayMs} ms, ${outcome})`;
        await checkConsistency(url, trial);

        // Whatever state the job was left in, the next request converges it.
        if (operation !== 'TEMP') {
          const healing: Operation =
            operation === 'TERMINATE'
              ? 'TERMINATE'
              : operation === 'DEPLOY_CREATE'
                ? 'DEPLOY_CREATE'
                : 'DEPLOY_LOAD';
          const healed = await send(url, jobId, healing);
          assert.equal(healed.status, 200, `${trial}: ${JSON.stringify(healed.body)}`);
          assert.equal(healed.body.state, operation === 'TERMINATE' ? 'terminated' : 'ready', trial);
          assert.equal((await send(url, jobId, 'TERMINATE')).status, 200);
        }
      }
      await checkConsistency(url, 'final');
    });
  });
}
