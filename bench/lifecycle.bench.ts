/**
 * Lifecycle operations through modeldock against the raw engine doing the same work
 * with the same image, in one run (the floor):
 *   DEPLOY_CREATE ~ docker create + start → first healthy HTTP answer → load the model
 *   DEPLOY_UNLOAD ~ the worker's unload call;  DEPLOY_LOAD ~ the worker's load call
 *   TERMINATE     ~ docker stop + docker rm
 *   TEMP          ~ create + start → healthy → load → batch over ds-550 → rm -f
 * Trials alternate floor and router so drift hits both alike. Medians, IQR, ratios and
 * the per-step breakdown from the operation records.
 *
 *   node --import tsx bench/lifecycle.bench.ts      (BENCH_TRIALS, default 9)
 */
import Dockerode from 'dockerode';
import { WorkerClient } from '../src/runtime/worker-client.js';
import { DATASETS_DIR, MODELS_DIR } from '../test/helpers/paths.js';
import { postJson, startTestRouter } from '../test/helpers/router.js';
import { floorComparisons, floorTables, machine, ms, summarize, table, writeResult } from './lib/stats.js';
import { writeLifecycleCharts } from './lib/bench-charts.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 9);
const IMAGE = 'modeldock/worker:latest';
const docker = new Dockerode();
const workers = new WorkerClient();
const MiB = 1024 * 1024;

type Op = 'DEPLOY_CREATE' | 'DEPLOY_UNLOAD' | 'DEPLOY_LOAD' | 'TERMINATE' | 'TEMP';
const OPS: Op[] = ['DEPLOY_CREATE', 'DEPLOY_UNLOAD', 'DEPLOY_LOAD', 'TERMINATE', 'TEMP'];

async function rawRunToHealthy(name: string) {
  const container = await docker.createContainer({
    name,
    Image: IMAGE,
    Labels: { 'modeldock.bench': 'floor' },
    User: '10001:10001',
    Env: ['MODELDOCK_WORKER_PORT=8000', 'MODELDOCK_MODELS_DIR=/models', 'MODELDOCK_DATASETS_DIR=/datasets'],
    ExposedPorts: { '8000/tcp': {} },
    HostConfig: {
      Mounts: [
        { Type: 'bind', Source: MODELS_DIR, Target: '/models', ReadOnly: true },
        { Type: 'bind', Source: DATASETS_DIR, Target: '/datasets', ReadOnly: true },
      ],
      Memory: 1024 * MiB,
      MemorySwap: 1024 * MiB,
      NanoCpus: 1e9,
      PidsLimit: 256,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=64m' },
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
    // One warm-up of each, not counted (page cache, image layers, JIT).
    await floorTrial(-1);
    for (let i = -1; i < TRIALS; i++) {
      if (i >= 0) {
        const f = await floorTrial(i);
        for (const op of OPS) floor[op].push(f.ops[op]);
        forcedRemovals.push(f.forcedRemovalMs);
      }
      const job = { job_id: `bench${i + 1}`, model: 'm-131', dataset: 'ds-550' };
      for (const op of OPS) {
        const [elapsed, response] = await timed(() =>
          postJson(`${t.url}/inference_router/`, { ...job, operation_type: op }),
        );
        if (response.status !== 200) throw new Error(`${op}: ${JSON.stringify(response.body)}`);
        if (i < 0) continue;
        router[op].push(elapsed);
        for (const step of response.body.steps as { name: string; duration_ms: number }[]) {
          (steps[`${op}.${step.name}`] ??= []).push(step.duration_ms);
        }
      }
      // The same through a router with a warm pool of one (refilled between operations).
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
    ...floorComparisons(OPS, floor, router, pool),
    steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v)])),
    warm_pool_steps: Object.fromEntries(Object.entries(poolSteps).map(([k, v]) => [k, summarize(v)])),
    // A TEMP answers after its worker is gone; the engine's forced removal of a running
    // worker (same image and options) is a floor under any TEMP, pool or not.
    engine_forced_removal: forcedRemoval,
    engine_forced_removal_to_temp_floor: forcedRemoval.median / summarize(floor.TEMP).median,
  };
  const file = writeResult('lifecycle', result);
  console.log(floorTables('engine', result.operations, result.warm_pool, floor));
  console.log(
    `\nthe engine's forced removal of a running worker alone: ${ms(result.engine_forced_removal.median)} ± ${ms(result.engine_forced_removal.iqr)} = ${result.engine_forced_removal_to_temp_floor.toFixed(2)}× the TEMP floor`,
  );
  console.log();
  console.log(
    table(
      ['operation.step', 'median', 'with the warm pool'],
      Object.entries(result.steps).map(([k, v]) => [
        k,
        ms(v.median),
        result.warm_pool_steps[k] ? ms(result.warm_pool_steps[k].median) : '—',
      ]),
    ),
  );
  console.log(`\nraw results: ${file}`);
  console.log(`charts: ${(await writeLifecycleCharts(result)).join(', ')}`);
}

await main();
