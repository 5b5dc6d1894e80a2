/**
 * Lifecycle operations through modeldock against the raw engine doing the same work
 * with the same image, in one run (the floor):
 *   DEPLOY_CREATE ~ docker create + start → first healthy HTTP answer → load the model
 *   DEPLOY_UNLOAD ~ the worker's unload call;  DEPLOY_LOAD ~ the worker's load call
 *   TERMINATE     ~ docker stop + docker rm
 *   TEMP          ~ create + start → healthy → load → batch over ds-550 → rm -f
 * Fair floors: the floor's containers get the options modeldock gives its workers (image,
 * secret, body limit, limits, hardening; checked against a modeldock worker before any
 * figure is taken), which side goes first alternates from trial to trial, and nothing is
 * measured while the pooled router refills its pool (that start would share the engine
 * and the two CPUs with what is measured). Medians, IQR, ratios and the per-step
 * breakdown from the operation records.
 *
 *   node --import tsx bench/lifecycle.bench.ts      (BENCH_TRIALS, default 9)
 */
import assert from 'node:assert/strict';
import Dockerode from 'dockerode';
import { LABELS } from '../src/runtime/runtime.js';
import { WorkerClient } from '../src/runtime/worker-client.js';
import { WORKER_BODY_LIMIT_ENV, workerBodyLimit } from '../src/worker-limits.js';
import { WORKER_SECRET_ENV, generateWorkerSecret } from '../src/worker-secret.js';
import { DATASETS_DIR, MODELS_DIR, WORKER_IMAGE } from '../test/helpers/paths.js';
import { postJson, startTestRouter } from '../test/helpers/router.js';
import { FIGURES, TABLES } from './lib/report-tables.js';
import { floorComparisons, inAlternatingOrder, machine, summarize, writeResult } from './lib/stats.js';
import { writeLifecycleCharts } from './lib/bench-charts.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 9);
const docker = new Dockerode();
// The floor's workers obey a secret as modeldock's do: this one.
const floorSecret = generateWorkerSecret();
const workers = new WorkerClient({ secretOf: () => floorSecret });
const MiB = 1024 * 1024;
// What startTestRouter gives modeldock's workers (MODELDOCK_WORKER_MEMORY=1g, 1 CPU, 256 pids).
const WORKER_MEMORY = 1024 * MiB;

type Op = 'DEPLOY_CREATE' | 'DEPLOY_UNLOAD' | 'DEPLOY_LOAD' | 'TERMINATE' | 'TEMP';
const OPS: Op[] = ['DEPLOY_CREATE', 'DEPLOY_UNLOAD', 'DEPLOY_LOAD', 'TERMINATE', 'TEMP'];

async function rawRunToHealthy(name: string) {
  const container = await docker.createContainer({
    name,
    Image: WORKER_IMAGE,
    Labels: { 'modeldock.bench': 'floor' },
    User: '10001:10001',
    Env: [
      'MODELDOCK_WORKER_PORT=8000',
      'MODELDOCK_MODELS_DIR=/models',
      'MODELDOCK_DATASETS_DIR=/datasets',
      `MODELDOCK_WORKER_NAME=${name}`,
      `${WORKER_BODY_LIMIT_ENV}=${workerBodyLimit(WORKER_MEMORY)}`,
      `${WORKER_SECRET_ENV}=${floorSecret}`,
    ],
    ExposedPorts: { '8000/tcp': {} },
    HostConfig: {
      Mounts: [
        { Type: 'bind', Source: MODELS_DIR, Target: '/models', ReadOnly: true },
        { Type: 'bind', Source: DATASETS_DIR, Target: '/datasets', ReadOnly: true },
      ],
      Memory: WORKER_MEMORY,
      MemorySwap: WORKER_MEMORY,
      NanoCpus: 1e9,
      PidsLimit: 256,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=64m' },
      RestartPolicy: { Name: 'no' },
      Init: true,
      PortBindings: { '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  await container.start();
  const port = (await container.inspect()).NetworkSettings.Ports['8000/tcp']![0]!.HostPort;
  const endpoint = `http://127.0.0.1:${port}`;
  await workers.waitUntilReady(endpoint, { timeoutMs: 60_000 });
  return { container, endpoint };
}

/** The options of a container that make it cost what it costs, names and secrets aside. */
async function costRelevantOptions(id: string) {
  const info = await docker.getContainer(id).inspect();
  const h = info.HostConfig;
  return {
    image: info.Config.Image,
    user: info.Config.User,
    env: info.Config.Env.map((e) => e.split('=')[0]).sort(),
    bodyLimit: info.Config.Env.find((e) => e.startsWith(`${WORKER_BODY_LIMIT_ENV}=`)),
    host: {
      Memory: h.Memory,
      MemorySwap: h.MemorySwap,
      NanoCpus: h.NanoCpus,
      PidsLimit: h.PidsLimit,
      CapDrop: h.CapDrop,
      SecurityOpt: h.SecurityOpt,
      ReadonlyRootfs: h.ReadonlyRootfs,
      Tmpfs: h.Tmpfs,
      RestartPolicy: h.RestartPolicy?.Name,
      Init: h.Init,
      NetworkMode: h.NetworkMode,
      PortBindings: h.PortBindings,
      Mounts: h.Mounts,
    },
  };
}

/** The floor is only a floor if its containers are modeldock's: fail before measuring if not. */
async function assertSameContainerOptions(modeldockWorker: string): Promise<void> {
  const probe = await rawRunToHealthy(`modeldock-bench-floor-${process.pid}-probe`);
  try {
    assert.deepEqual(
      await costRelevantOptions(probe.container.id),
      await costRelevantOptions(modeldockWorker),
      "the floor's container options differ from modeldock's worker's",
    );
  } finally {
    await probe.container.remove({ force: true });
    await workers.forget(probe.endpoint);
  }
}

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [performance.now() - started, value];
}

/** One floor trial: each operation's time, and the engine's forced removal of the running TEMP worker alone. */
async function floorTrial(i: number): Promise<{ ops: Record<Op, number>; forcedRemovalMs: number }> {
  const name = `modeldock-bench-floor-${process.pid}-${i}`;
  const [runMs, { container, endpoint }] = await timed(() => rawRunToHealthy(name));
  const [loadMs] = await timed(() => workers.load(endpoint, 'job', 'm-131'));
  const [unloadMs] = await timed(() => workers.unload(endpoint, 'job'));
  const [reloadMs] = await timed(() => workers.load(endpoint, 'job', 'm-131'));
  const [terminateMs] = await timed(async () => {
    await container.stop({ t: 5 });
    await container.remove();
  });
  await workers.forget(endpoint);
  let forcedRemovalMs = NaN;
  const [tempMs] = await timed(async () => {
    const temp = await rawRunToHealthy(`${name}-temp`);
    await workers.load(temp.endpoint, 'job', 'm-131');
    await workers.batch(temp.endpoint, 'job', 'ds-550');
    // modeldock removes a one-shot worker without a graceful stop; so does the floor.
    [forcedRemovalMs] = await timed(() => temp.container.remove({ force: true }));
    await workers.forget(temp.endpoint);
  });
  return {
    ops: {
      DEPLOY_CREATE: runMs + loadMs,
      DEPLOY_UNLOAD: unloadMs,
      DEPLOY_LOAD: reloadMs,
      TERMINATE: terminateMs,
      TEMP: tempMs,
    },
    forcedRemovalMs,
  };
}

/** The one running worker container of a router instance. */
async function workerOf(instance: string): Promise<string> {
  const [container] = await docker.listContainers({
    filters: { label: [`${LABELS.instance}=${instance}`, `${LABELS.kind}=job`] },
  });
  if (!container) throw new Error(`no worker of ${instance} is running`);
  return container.Id;
}

async function main() {
  const t = await startTestRouter({ env: { MODELDOCK_LOG_LEVEL: 'error' } });
  const pooled = await startTestRouter({ env: { MODELDOCK_LOG_LEVEL: 'error', MODELDOCK_WARM_POOL: '1' } });
  const pool: Record<'DEPLOY_CREATE' | 'TEMP', number[]> = { DEPLOY_CREATE: [], TEMP: [] };
  const floor: Record<Op, number[]> = Object.fromEntries(OPS.map((o) => [o, []])) as never;
  const router: Record<Op, number[]> = Object.fromEntries(OPS.map((o) => [o, []])) as never;
  const steps: Record<string, number[]> = {};
  const poolSteps: Record<string, number[]> = {};
  const forcedRemovals: number[] = [];
  try {
    // One warm-up of each (trial -1), not counted (page cache, image layers, JIT).
    for (let i = -1; i < TRIALS; i++) {
      const job = { job_id: `bench${i + 1}`, model: 'm-131', dataset: 'ds-550' };
      const floorPart = async () => {
        await pooled.router.lifecycle.pool.whenFull();
        const f = await floorTrial(i);
        if (i < 0) return;
        for (const op of OPS) floor[op].push(f.ops[op]);
        forcedRemovals.push(f.forcedRemovalMs);
      };
      const modeldockPart = async () => {
        for (const op of OPS) {
          await pooled.router.lifecycle.pool.whenFull();
          const [elapsed, response] = await timed(() =>
            postJson(`${t.url}/inference_router/`, { ...job, operation_type: op }),
          );
          if (response.status !== 200) throw new Error(`${op}: ${JSON.stringify(response.body)}`);
          if (i < 0 && op === 'DEPLOY_CREATE') await assertSameContainerOptions(await workerOf(t.instance));
          if (i < 0) continue;
          router[op].push(elapsed);
          for (const step of response.body.steps as { name: string; duration_ms: number }[]) {
            (steps[`${op}.${step.name}`] ??= []).push(step.duration_ms);
          }
        }
      };
      // Whoever goes first follows the other side's removals (the engine may still be
      // tearing down their network): the order alternates, so that falls on both alike.
      await inAlternatingOrder(i, floorPart, modeldockPart);
      // The same through a router with a warm pool of one, its pool full before each.
      for (const op of ['DEPLOY_CREATE', 'TEMP'] as const) {
        await pooled.router.lifecycle.pool.whenFull();
        const [elapsed, response] = await timed(() =>
          postJson(`${pooled.url}/inference_router/`, { ...job, operation_type: op }),
        );
        if (response.status !== 200) throw new Error(`pooled ${op}: ${JSON.stringify(response.body)}`);
        if (i < 0) continue;
        pool[op].push(elapsed);
        for (const step of response.body.steps as { name: string; duration_ms: number }[]) {
          (poolSteps[`${op}.${step.name}`] ??= []).push(step.duration_ms);
        }
      }
      await postJson(`${pooled.url}/inference_router/`, { ...job, operation_type: 'TERMINATE' });
    }
  } finally {
    await t.cleanup();
    await pooled.cleanup();
    await workers.close();
  }

  const forcedRemoval = summarize(forcedRemovals);
  const result = {
    machine: machine(),
    trials: TRIALS,
    order:
      'floor first in even trials, modeldock first in odd ones; the pool full before each measured operation',
    ...floorComparisons(OPS, floor, router, pool),
    steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v)])),
    warm_pool_steps: Object.fromEntries(Object.entries(poolSteps).map(([k, v]) => [k, summarize(v)])),
    // A TEMP answers after its worker is gone; the engine's forced removal of a running
    // worker (same image and options) is a floor under any TEMP, pool or not.
    engine_forced_removal: forcedRemoval,
    engine_forced_removal_to_temp_floor: forcedRemoval.median / summarize(floor.TEMP).median,
  };
  const file = writeResult('lifecycle', result);
  for (const key of ['lifecycle.operations', 'lifecycle.warm_pool', 'lifecycle.steps'])
    console.log(`${TABLES[key]!(result)}\n`);
  console.log(
    `the engine's forced removal of a running worker alone: ${FIGURES['lifecycle.forced_removal']!(result)}`,
  );
  console.log(`\nraw results: ${file}`);
  console.log(`charts: ${(await writeLifecycleCharts(result)).join(', ')}`);
}

await main();
