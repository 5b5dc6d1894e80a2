/**
 * Density (issue #26): how many jobs fit in how much worker memory, dedicated against
 * shared placement, and what eviction costs under a memory budget. One run, Docker
 * runtime, the router as `npm start` runs it (compiled), every job with a model
 * directory of its own (hard links to m-131's files, so each is loaded and measured as
 * a model of its own):
 * - jobs vs. total worker memory (the runtime's measure of every worker, GET /v1/stats):
 *   dedicated at BENCH_DENSITY_DEDICATED jobs (default 2,5,10), shared at
 *   BENCH_DENSITY_SHARED (default 10,100,1000), with the number of workers; every shared
 *   job answers one inference;
 * - DEPLOY_CREATE of a shared job: the shared run's jobs are created one at a time, by
 *   the original request (POST /inference_router/, "placement": "shared"), so each one's
 *   latency is its own, not a queue's; with the medians of its recorded steps;
 * - BENCH_DENSITY_REGISTERED jobs (default 10,000) registered under a memory budget of
 *   what a tenth of them measured live in the shared run (4 at once; so
 *   BENCH_DENSITY_SHARED must include that tenth), by a new router and its own workers, then
 *   BENCH_DENSITY_PAIRS (default 2,000) pairs of requests to random jobs, 8 pairs at
 *   once. Before a pair the job's state is read (GET /v1/jobs/:id): `unloaded` means its
 *   model was evicted, so the pair's first request is the first after an eviction (a cold
 *   load); the second finds it loaded (steady state). Requests served and failed,
 *   evictions per second, p50/p99, and the medians of the on-demand loads' recorded steps.
 *   What the workers measure (GET /v1/stats): sampled every 2 s during the traffic (the
 *   peak kept: `memory_peak`), at its end (`memory_at_traffic_end`), and after the fleet
 *   settled (`memory_after`): a fleet measuring over its budget drains and closes a worker
 *   per pass (docs/operations.md#a-fleet-measuring-past-its-budget), so the bench waits,
 *   at most BENCH_DENSITY_SETTLE_S (default 180) s, for the measure to come within the
 *   budget (`settle_s`, `settled`), and counts the workers drained (`workers_drained`).
 *
 *   node --import tsx bench/density.bench.ts
 */
import Dockerode from 'dockerode';
import { chmod, link, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import os from 'node:os';
import path from 'node:path';
import { DIGITS } from '../test/helpers/fixtures.js';
import { MODELS_DIR } from '../test/helpers/paths.js';
import { getJson, postJson, removeInstanceContainers, uniqueInstance } from '../test/helpers/router.js';
import type { RouterProcess } from '../test/helpers/router-process.js';
import { writeDensityCharts } from './lib/bench-charts.js';
import { machine, summarize, writeResult } from './lib/stats.js';
import { startBenchRouter } from './lib/bench-router.js';

const sizes = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map(Number);
const DEDICATED = sizes('BENCH_DENSITY_DEDICATED', '2,5,10');
const SHARED = sizes('BENCH_DENSITY_SHARED', '10,100,1000');
const REGISTERED = Number(process.env.BENCH_DENSITY_REGISTERED ?? 10_000);
const PAIRS = Number(process.env.BENCH_DENSITY_PAIRS ?? 2_000);
const AT_ONCE = 8;
const SETTLE_MS = Number(process.env.BENCH_DENSITY_SETTLE_S ?? 180) * 1000;
/** How often the workers' measure is sampled during the churn's traffic and while it settles. */
const SAMPLE_EVERY_MS = 2_000;
const MiB = 1024 ** 2;
const docker = new Dockerode();
const digit = DIGITS[0]!;

/** A model store of `count` models d-00000…, each its own directory of m-131's files. */
async function modelStore(dir: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const model = path.join(dir, modelId(i));
    await mkdir(model, { recursive: true });
    for (const file of ['model.onnx', 'model.json'])
      await link(path.join(MODELS_DIR, 'm-131', file), path.join(model, file));
  }
}

const modelId = (i: number) => `d-${String(i).padStart(5, '0')}`;

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [performance.now() - started, value];
}

/** One recorded step of an operation (GET /v1/operations, an operation's answer). */
type Step = { name: string; duration_ms: number };

/** DEPLOY_CREATE by the original request; its latency and the operation's steps. */
async function deployCreate(
  url: string,
  i: number,
): Promise<[number, { name: string; duration_ms: number }[]]> {
  const [elapsed, response] = await timed(() =>
    postJson(`${url}/inference_router/`, {
      job_id: `j${i}`,
      model: modelId(i),
      dataset: 'ds-550',
      operation_type: 'DEPLOY_CREATE',
      placement: 'shared',
    }),
  );
  if (response.status !== 200) throw new Error(`j${i}: ${response.status} ${JSON.stringify(response.body)}`);
  return [elapsed, (response.body.steps as Step[]) ?? []];
}

async function jobState(url: string, i: number): Promise<string> {
  const { status, body } = await getJson(`${url}/v1/jobs/j${i}`);
  if (status !== 200) throw new Error(`j${i}: ${status} ${JSON.stringify(body)}`);
  return body.state as string;
}

/**
 * Create job j<i>. 201 when a container was created for it, 200 when it joined a running
 * worker; with `refusals`, a refusal the issue allows under a memory budget (429 or 503,
 * with its reason) is counted there instead of ending the run, and undefined returned.
 */
async function create(
  url: string,
  i: number,
  placement: 'dedicated' | 'shared',
  refusals?: Map<string, number>,
): Promise<number | undefined> {
  const [elapsed, response] = await timed(() =>
    postJson(`${url}/v1/jobs`, { job_id: `j${i}`, model: modelId(i), dataset: 'ds-550', placement }),
  );
  if (response.status === 200 || response.status === 201) return elapsed;
  if (refusals && (response.status === 429 || response.status === 503)) {
    const error = (response.body as { error?: { code?: string; reason?: string } }).error;
    const key = `${response.status} ${error?.reason ?? error?.code ?? 'unknown'}`;
    refusals.set(key, (refusals.get(key) ?? 0) + 1);
    return undefined;
  }
  throw new Error(`j${i}: ${response.status} ${JSON.stringify(response.body)}`);
}

async function infer(url: string, i: number): Promise<[number, number]> {
  const [elapsed, response] = await timed(() =>
    postJson(`${url}/v2/models/j${i}/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: digit.inputs.pixels }],
    }),
  );
  return [elapsed, response.status];
}

/** Run `work` on 0…count-1, `atOnce` at a time. */
async function inParallel(count: number, atOnce: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: atOnce }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

/** Every running worker's memory as the runtime measures it, and how many there are. */
async function workerMemory(url: string): Promise<{ workers: number; total_mib: number }> {
  const { body } = await getJson(`${url}/v1/stats`);
  const workers = body.workers as { memory_bytes: number }[];
  const total = workers.reduce((sum, w) => sum + w.memory_bytes, 0);
  return { workers: workers.length, total_mib: Math.round((total / MiB) * 10) / 10 };
}

/**
 * The workers' measure sampled every SAMPLE_EVERY_MS until `stop` aborts: the sample with
 * the largest total.
 */
async function peakMemory(
  url: string,
  stop: AbortSignal,
): Promise<{ workers: number; total_mib: number; samples: number }> {
  let peak = { workers: 0, total_mib: 0 };
  let samples = 0;
  while (!stop.aborted) {
    const sample = await workerMemory(url);
    samples++;
    if (sample.total_mib > peak.total_mib) peak = sample;
    await delay(SAMPLE_EVERY_MS, undefined, { signal: stop }).catch(() => undefined);
  }
  return { ...peak, samples };
}

/**
 * The workers' measure once it is within `budgetMiB` (sampled every SAMPLE_EVERY_MS), or
 * the last sample after SETTLE_MS; with the seconds waited.
 */
async function settledMemory(
  url: string,
  budgetMiB: number,
): Promise<{ memory: { workers: number; total_mib: number }; settled: boolean; settle_s: number }> {
  const started = performance.now();
  for (;;) {
    const memory = await workerMemory(url);
    const waited = performance.now() - started;
    const settled = memory.total_mib <= budgetMiB;
    if (settled || waited >= SETTLE_MS) return { memory, settled, settle_s: Math.round(waited / 100) / 10 };
    await delay(SAMPLE_EVERY_MS);
  }
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm')))
    sum += Number(match[1]);
  return sum;
}

/** The median of each named step over operations' recorded steps, plus `extra` series by name. */
function stepMedians(recorded: Step[][], extra: Record<string, number[]> = {}): Record<string, number> {
  const steps = new Map<string, number[]>(Object.entries(extra));
  for (const ofOne of recorded)
    for (const step of ofOne) {
      const values = steps.get(step.name);
      if (values) values.push(step.duration_ms);
      else steps.set(step.name, [step.duration_ms]);
    }
  return Object.fromEntries([...steps].map(([name, values]) => [name, summarize(values).median]));
}

/**
 * Where a load on demand's time goes: the medians of the recorded steps of the last
 * (at most 1,000) on-demand DEPLOY_LOADs, and of their whole durations (`total`).
 */
async function onDemandLoadSteps(url: string): Promise<Record<string, number>> {
  const { status, body } = await getJson(`${url}/v1/operations?type=DEPLOY_LOAD&limit=1000`);
  if (status !== 200) throw new Error(`operations: ${status} ${JSON.stringify(body)}`);
  const loads = (
    body.operations as {
      reason: string;
      duration_ms: number | null;
      steps: Step[];
    }[]
  ).filter((op) => op.reason === 'on_demand');
  return stepMedians(
    loads.map((op) => op.steps),
    { total: loads.map((op) => op.duration_ms ?? 0) },
  );
}

async function startRouter(
  instance: string,
  dataDir: string,
  modelsDir: string,
  env: Record<string, string>,
) {
  const router = await startBenchRouter(
    {
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_MODELS_DIR: modelsDir,
      // spawnRouter finds the router by its "listening" line, an info one.
      MODELDOCK_LOG_LEVEL: 'info',
      MODELDOCK_READY_TIMEOUT_MS: '120000',
      MODELDOCK_MAX_SERVERS: '64',
      ...env,
    },
    path.join(dataDir, 'router.log'),
  );
  // spawnRouter's line reader pauses the router's stdout when it closes: at info level the
  // pipe would fill and block the router. Keep it flowing (into the log file).
  router.child.stdout?.resume();
  return router;
}

async function withRouter<T>(
  modelsDir: string,
  env: Record<string, string>,
  work: (router: RouterProcess) => Promise<T>,
): Promise<T> {
  const instance = uniqueInstance('density');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-density-'));
  const router = await startRouter(instance, dataDir, modelsDir, env);
  try {
    return await work(router);
  } finally {
    await router.kill('SIGTERM');
    await removeInstanceContainers(docker, instance);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main() {
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-density-models-'));
  await chmod(modelsDir, 0o755); // the workers run unprivileged
  const largest = Math.max(...SHARED);
  await modelStore(modelsDir, Math.max(REGISTERED, largest, ...DEDICATED));
  try {
    console.log('dedicated…');
    const dedicated = await withRouter(modelsDir, {}, async (router) => {
      const points: { jobs: number; workers: number; total_mib: number }[] = [];
      let created = 0;
      for (const size of DEDICATED) {
        await inParallel(
          size - created,
          4,
          async (i) => void (await create(router.url, created + i, 'dedicated')),
        );
        created = size;
        points.push({ jobs: size, ...(await workerMemory(router.url)) });
        console.log(`  ${size} jobs:`, points.at(-1));
      }
      return points;
    });

    console.log('shared…');
    const shared = await withRouter(modelsDir, { MODELDOCK_PLACEMENT: 'shared' }, async (router) => {
      const points: { jobs: number; workers: number; total_mib: number }[] = [];
      const creates: number[] = [];
      const recordedSteps: Step[][] = [];
      let created = 0;
      for (const size of SHARED) {
        const from = created;
        await inParallel(size - from, 1, async (i) => {
          const [elapsed, recorded] = await deployCreate(router.url, from + i);
          creates.push(elapsed);
          recordedSteps.push(recorded);
        });
        created = size;
        points.push({ jobs: size, ...(await workerMemory(router.url)) });
        console.log(`  ${size} jobs:`, points.at(-1));
      }
      let failed = 0;
      await inParallel(largest, AT_ONCE, async (i) => {
        const [, status] = await infer(router.url, i);
        if (status !== 200) failed++;
      });
      const createSteps = stepMedians(recordedSteps);
      return { points, creates, createSteps, answered: largest - failed, failed };
    });

    // The budget holds a tenth of the registered jobs: what that many live shared jobs measured.
    const tenth = shared.points.find((p) => p.jobs === REGISTERED / 10);
    if (!tenth)
      throw new Error(
        `BENCH_DENSITY_SHARED must include ${REGISTERED / 10} (a tenth of the registered jobs)`,
      );
    const budgetMiB = Math.ceil(tenth.total_mib);
    console.log(`${REGISTERED} jobs under a budget of ${budgetMiB} MiB…`);
    const churn = await withRouter(
      modelsDir,
      {
        MODELDOCK_PLACEMENT: 'shared',
        MODELDOCK_MEMORY_BUDGET: `${budgetMiB}m`,
        MODELDOCK_MIN_RESIDENCY_MS: '1000',
      },
      async (router) => {
        // Refused registrations are counted, not fatal: the traffic goes to the jobs that exist.
        const registered: number[] = [];
        const refusals = new Map<string, number>();
        const [registerMs] = await timed(() =>
          inParallel(REGISTERED, 4, async (i) => {
            if ((await create(router.url, i, 'shared', refusals)) !== undefined) registered.push(i);
          }),
        );
        if (registered.length === 0) throw new Error(`no job registered: ${JSON.stringify([...refusals])}`);
        const evictionsBefore = await metric(router.url, 'modeldock_evictions_total');
        const afterEviction: number[] = [];
        const firstLoaded: number[] = [];
        const warm: number[] = [];
        let failed = 0;
        const trafficEnded = new AbortController();
        const peak = peakMemory(router.url, trafficEnded.signal);
        const [trafficMs] = await timed(() =>
          inParallel(PAIRS, AT_ONCE, async () => {
            const job = registered[Math.floor(Math.random() * registered.length)]!;
            const evicted = (await jobState(router.url, job)) === 'unloaded';
            for (const into of [evicted ? afterEviction : firstLoaded, warm]) {
              const [elapsed, status] = await infer(router.url, job);
              if (status === 200) into.push(elapsed);
              else failed++;
            }
          }),
        );
        trafficEnded.abort();
        const memoryAtTrafficEnd = await workerMemory(router.url);
        const evictions = (await metric(router.url, 'modeldock_evictions_total')) - evictionsBefore;
        const loadSteps = await onDemandLoadSteps(router.url);
        const settled = await settledMemory(router.url, budgetMiB);
        return {
          budget_mib: budgetMiB,
          registered: registered.length,
          registrations_asked: REGISTERED,
          registrations_refused: Object.fromEntries(refusals),
          register_s: Math.round(registerMs / 100) / 10,
          requests: PAIRS * 2,
          served: afterEviction.length + firstLoaded.length + warm.length,
          failed,
          traffic_s: Math.round(trafficMs / 100) / 10,
          evictions,
          evictions_per_s: Math.round((evictions / (trafficMs / 1000)) * 10) / 10,
          all_ms: summarize([...afterEviction, ...firstLoaded, ...warm]),
          first_after_eviction_ms: summarize(afterEviction),
          load_on_demand_steps_p50_ms: loadSteps,
          first_found_loaded_ms: summarize(firstLoaded),
          second_of_pair_ms: summarize(warm),
          memory_peak: await peak,
          memory_at_traffic_end: memoryAtTrafficEnd,
          settled: settled.settled,
          settle_s: settled.settle_s,
          workers_drained: await metric(router.url, 'modeldock_shared_workers_drained_total'),
          memory_after: settled.memory,
        };
      },
    );

    const result = {
      machine: machine(),
      runtime: 'docker',
      dedicated,
      shared: shared.points,
      shared_answered: shared.answered,
      shared_failed: shared.failed,
      deploy_create_shared_ms: summarize(shared.creates),
      deploy_create_shared_steps_p50_ms: shared.createSteps,
      churn,
    };
    const file = writeResult('density', result);
    console.log(JSON.stringify(result, null, 2));
    console.log(`wrote ${file}`);
    for (const chart of await writeDensityCharts(result)) console.log(`wrote ${chart}`);
  } finally {
    await rm(modelsDir, { recursive: true, force: true });
  }
}

await main();
