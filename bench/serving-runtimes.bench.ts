/**
 * DEPLOY_CREATE on foreign serving runtimes (process runtime) against each runtime's own
 * start-and-load floor, in one run: the floor starts the same server by hand — the
 * catalog entry's command, arguments and environment with its placeholders filled as the
 * process runtime fills them, in a model repository holding the model under the job's
 * name — waits for /v2/health/ready and loads the model through the repository API.
 * It runs in cgroups with the limits modeldock gives its workers (where the machine
 * allows them), as the process runtime places them. modeldock's DEPLOY_CREATE does that
 * plus its own work (records, the catalog, state files, the operation record). A third
 * side, the floor behind the guard (the server started by hand beside the guard, as the
 * process runtime starts the two, and called through it), tells the guard's share apart
 * from modeldock's bookkeeping. Each side goes first in turn from trial to trial.
 * Medians, IQR and ratios; the per-step breakdown from the operation records. MLServer always; Triton when its wrapper is installed
 * (scripts/python-venv.sh).
 *
 * Then DEPLOY_CREATE from a warm pool of the same runtime (MODELDOCK_WARM_POOL=<entry>=1,
 * pooledCase): the idle server is started before the trial (the pool is waited for until
 * full, not timed), so DEPLOY_CREATE links the model into it and loads it; against the
 * same floor of the same run.
 *
 *   npm run bench -- serving-runtimes      (builds first; BENCH_TRIALS, default 7)
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { builtInServingRuntimes, type ServingRuntime } from '../src/lifecycle/serving-runtimes.js';
import { freeLoopbackPort } from '../src/runtime/loopback-port.js';
import { besideGuard, guardCommand } from '../src/runtime/process/process-runtime.js';
import {
  commandInCgroups,
  prepareCgroups,
  release,
  type PreparedCgroups,
} from '../src/runtime/process/cgroup.js';
import type { WorkerLimits } from '../src/runtime/runtime.js';
import { WorkerClient } from '../src/runtime/worker-client.js';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT } from '../test/helpers/paths.js';
import { tritonServerDir, venvBin } from '../test/helpers/python.js';
import { postJson } from '../test/helpers/router.js';
import { startScratchRouter } from '../test/helpers/scratch-router.js';
import { TABLES } from './lib/report-tables.js';
import { machine, summarize, writeResult } from './lib/stats.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 7);

/** The original TERMINATE of a measured job, which must succeed before the next trial. */
async function terminate(url: string, job: object): Promise<void> {
  const ended = await postJson(`${url}/inference_router/`, { ...job, operation_type: 'TERMINATE' });
  if (ended.status !== 200) throw new Error(`TERMINATE: ${JSON.stringify(ended.body)}`);
}

/** Adds each step's duration of an operation's answer to the lists by step name. */
function collectSteps(answered: unknown, steps: Record<string, number[]>): void {
  for (const step of answered as { name: string; duration_ms: number }[]) {
    (steps[step.name] ??= []).push(step.duration_ms);
  }
}
const workers = new WorkerClient();

interface Case {
  runtime: 'mlserver' | 'triton';
  model: string;
  /** The directory that holds the server's command, put first on the PATH. */
  bin: () => string;
}

const CASES: Case[] = [
  { runtime: 'mlserver', model: 'm-132', bin: () => path.dirname(venvBin('mlserver')) },
  { runtime: 'triton', model: 'm-133', bin: tritonServerDir },
];

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [performance.now() - started, value];
}

/** Calls through a guard carry the secret it was given, as the router's do. */
const GUARD_SECRET = 'bench-guard-secret-0123456789abcdef';
const guardedWorkers = new WorkerClient({ secretOf: () => GUARD_SECRET });

/**
 * A guard in front of the server `words` started by hand, as the process runtime starts
 * the two (besideGuard: the server forked first, then the guard, compiled as under `npm
 * start`), the server listening on `serverPort`: the command, its environment, and where
 * the guard answers.
 */
async function besideItsGuard(words: string[], serverPort: string, serverDir: string) {
  const port = await freeLoopbackPort();
  const guard = guardCommand({
    command: process.execPath,
    args: [path.join(REPO_ROOT, 'dist/worker/main.js')],
  });
  return {
    ...besideGuard(guard, words, serverDir),
    endpoint: `http://127.0.0.1:${port}`,
    env: {
      MODELDOCK_GUARD_HOST: '127.0.0.1',
      MODELDOCK_GUARD_PORT: String(port),
      MODELDOCK_WORKER_PORT: serverPort,
      MODELDOCK_WORKER_SECRET: GUARD_SECRET,
      MODELDOCK_LOG_LEVEL: 'warn',
    },
  };
}

/**
 * The floor: the entry's server started by hand, ready, the model loaded; then stopped.
 * `guarded`: with the guard beside it as the process runtime starts the two
 * (guardedServer), called through the guard: the guard's own cost, without modeldock's
 * bookkeeping.
 */
async function floorTrial(
  entry: ServingRuntime,
  model: string,
  scratch: string,
  i: number,
  limits: WorkerLimits,
  guarded = false,
): Promise<number> {
  const command = entry.process!;
  const dir = path.join(scratch, `floor-${i}${guarded ? '-guarded' : ''}`);
  const repository = path.join(dir, 'models');
  await mkdir(repository, { recursive: true });
  // A copy, not a link to the checkout's store: Triton's Python backend writes __pycache__
  // beside model.py whatever PYTHONDONTWRITEBYTECODE says, and the store's files are
  // what the unit tests list.
  await cp(path.join(MODELS_DIR, model), path.join(repository, 'job'), { recursive: true });
  const values: Record<string, string> = {
    host: '127.0.0.1',
    port: String(await freeLoopbackPort()),
    grpcPort: String(await freeLoopbackPort()),
    metricsPort: String(await freeLoopbackPort()),
    modelsDir: repository,
    datasetsDir: DATASETS_DIR,
  };
  const fill = (text: string) => text.replace(/\{(\w+)\}/g, (match, name: string) => values[name] ?? match);
  const words = [command.command, ...command.args.map(fill)];
  const guard = guarded ? await besideItsGuard(words, values.port!, dir) : undefined;
  const endpoint = guard?.endpoint ?? `http://127.0.0.1:${values.port}`;
  const client = guard ? guardedWorkers : workers;
  let server: ReturnType<typeof spawn> | undefined;
  let cgroups: PreparedCgroups | undefined;
  const [elapsed] = await timed(async () => {
    // The same cgroups and limits as modeldock's workers get (where the machine allows
    // them): a floor without the CPU quota would start faster than any worker could.
    cgroups = await prepareCgroups(`bench-floor-${process.pid}-${i}`, limits);
    const program = guard ?? { command: words[0]!, args: words.slice(1) };
    const run = commandInCgroups(cgroups, program.command, program.args);
    server = spawn(run.command, run.args, {
      cwd: guard ? REPO_ROOT : dir,
      detached: true,
      stdio: 'ignore',
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        ...guard?.env,
        ...Object.fromEntries(Object.entries(command.env).map(([k, v]) => [k, fill(v)])),
      },
    });
    await client.waitUntilReady(endpoint, {
      timeoutMs: 120_000,
      isAlive: async () => server!.exitCode === null && server!.signalCode === null,
    });
    await client.load(endpoint, 'job', undefined);
  });
  const exited = new Promise((resolve) => server!.once('exit', resolve));
  process.kill(-server!.pid!, 'SIGTERM');
  await exited;
  await release(cgroups!.groups.map((g) => g.dir));
  await client.forget(endpoint);
  return elapsed;
}

/** The parts of a trial, each going first in turn (as inAlternatingOrder does for two). */
async function inRotatingOrder(trial: number, parts: (() => Promise<void>)[]): Promise<void> {
  const shift = ((trial % parts.length) + parts.length) % parts.length;
  for (const part of [...parts.slice(shift), ...parts.slice(0, shift)]) await part();
}

async function runCase(c: Case) {
  const entry = builtInServingRuntimes().find((e) => e.name === c.runtime)!;
  const originalPath = process.env.PATH;
  process.env.PATH = `${c.bin()}${path.delimiter}${originalPath}`;
  const scratchDir = await mkdtemp(path.join(os.tmpdir(), `modeldock-bench-${c.runtime}-`));
  const router = await startScratchRouter(
    `b${c.runtime.slice(0, 3)}`,
    async ({ modelsDir }) => {
      await cp(path.join(MODELS_DIR, c.model), path.join(modelsDir, c.model), { recursive: true });
    },
    { MODELDOCK_LOG_LEVEL: 'error' },
    // Workers and their guards run compiled, as under `npm start` (npm run bench builds first).
    { command: process.execPath, args: [path.join(REPO_ROOT, 'dist/worker/main.js')], cwd: REPO_ROOT },
  );
  const { config } = router.t;
  const limits: WorkerLimits = {
    memoryBytes: config.workerMemoryBytes,
    nanoCpus: Math.round(config.workerCpus * 1e9),
    pids: config.workerPids,
  };
  const floor: number[] = [];
  /** The floor with the guard beside the server: what the guard alone adds. */
  const guardedFloor: number[] = [];
  const modeldock: number[] = [];
  const steps: Record<string, number[]> = {};
  try {
    // One warm-up of each (trial -1), not counted (page cache, imports, JIT).
    for (let i = -1; i < TRIALS; i++) {
      const floorPart = async () => {
        const elapsed = await floorTrial(entry, c.model, scratchDir, i + 1, limits);
        if (i >= 0) floor.push(elapsed);
      };
      const modeldockPart = async () => {
        const job = { job_id: `bench${i + 1}`, model: c.model, dataset: 'ds-550' };
        const [elapsed, response] = await timed(() =>
          postJson(`${router.t.url}/inference_router/`, { ...job, operation_type: 'DEPLOY_CREATE' }),
        );
        if (response.status !== 200) throw new Error(`DEPLOY_CREATE: ${JSON.stringify(response.body)}`);
        await terminate(router.t.url, job);
        if (i < 0) return;
        modeldock.push(elapsed);
        collectSteps(response.body.steps, steps);
      };
      const guardedPart = async () => {
        const elapsed = await floorTrial(entry, c.model, scratchDir, i + 1, limits, true);
        if (i >= 0) guardedFloor.push(elapsed);
      };
      await inRotatingOrder(i, [floorPart, guardedPart, modeldockPart]);
    }
  } finally {
    await router.cleanup();
    await rm(scratchDir, { recursive: true, force: true });
    process.env.PATH = originalPath;
  }
  return {
    runtime: c.runtime,
    model: c.model,
    floor: summarize(floor),
    modeldock: summarize(modeldock),
    ratio: summarize(modeldock).median / summarize(floor).median,
    guarded_floor: summarize(guardedFloor),
    guard_ratio: summarize(guardedFloor).median / summarize(floor).median,
    steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v)])),
  };
}

/**
 * DEPLOY_CREATE taking an idle server from the runtime's warm pool, against `floorMs` (the
 * floor measured by runCase in this run). Each trial waits until the pool is full again
 * (its refill would otherwise start a server while the next trial runs), then times the
 * DEPLOY_CREATE alone.
 */
async function pooledCase(c: Case, floorMs: number) {
  const originalPath = process.env.PATH;
  process.env.PATH = `${c.bin()}${path.delimiter}${originalPath}`;
  const router = await startScratchRouter(
    `p${c.runtime.slice(0, 3)}`,
    async ({ modelsDir }) => {
      await cp(path.join(MODELS_DIR, c.model), path.join(modelsDir, c.model), { recursive: true });
    },
    { MODELDOCK_LOG_LEVEL: 'error', MODELDOCK_WARM_POOL: `${c.runtime}=1` },
    { command: process.execPath, args: [path.join(REPO_ROOT, 'dist/worker/main.js')], cwd: REPO_ROOT },
  );
  const pooled: number[] = [];
  const steps: Record<string, number[]> = {};
  try {
    for (let i = -1; i < TRIALS; i++) {
      await router.t.router.lifecycle.pool.whenFull();
      const job = { job_id: `pooled${i + 1}`, model: c.model, dataset: 'ds-550' };
      const [elapsed, response] = await timed(() =>
        postJson(`${router.t.url}/inference_router/`, { ...job, operation_type: 'DEPLOY_CREATE' }),
      );
      if (response.status !== 200) throw new Error(`pooled DEPLOY_CREATE: ${JSON.stringify(response.body)}`);
      const names = (response.body.steps as { name: string }[]).map((step) => step.name);
      if (names.includes('start')) throw new Error(`DEPLOY_CREATE started a server: ${names.join(', ')}`);
      await terminate(router.t.url, job);
      if (i < 0) continue;
      pooled.push(elapsed);
      collectSteps(response.body.steps, steps);
    }
  } finally {
    await router.cleanup();
    process.env.PATH = originalPath;
  }
  return {
    pooled: {
      modeldock: summarize(pooled),
      ratio: summarize(pooled).median / floorMs,
      steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v)])),
    },
  };
}

async function main() {
  const runtimes = [];
  const skipped: string[] = [];
  for (const c of CASES) {
    try {
      c.bin();
    } catch (error) {
      // A bench measures what is installed; a missing server is said in the result.
      skipped.push(`${c.runtime}: ${(error as Error).message}`);
      continue;
    }
    const measured = await runCase(c);
    runtimes.push({ ...measured, ...(await pooledCase(c, measured.floor.median)) });
  }
  await workers.close();
  await guardedWorkers.close();
  const result = {
    machine: machine(),
    trials: TRIALS,
    order: 'floor, floor behind the guard and modeldock each go first in turn',
    limits: 'the floor runs in cgroups with the limits modeldock gives its workers',
    runtimes,
    skipped,
  };
  const file = writeResult('serving-runtimes', result);
  for (const key of [
    'serving-runtimes.create',
    'serving-runtimes.guard',
    'serving-runtimes.steps',
    'serving-runtimes.pooled',
  ])
    console.log(`${TABLES[key]!(result)}\n`);
  console.log(`raw results: ${file}`);
}

await main();
