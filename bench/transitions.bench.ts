/**
 * Inference latency through lifecycle transitions: a few keep-alive connections keep
 * `POST /v2/models/{job}/infer` busy (closed loop, one m-131 digit) against the router
 * (a separate process, compiled, as deployed) while, phase after phase:
 * - nothing happens (the steady state, the baseline of the same run);
 * - the job is unloaded and loaded again, repeatedly (each request sent meanwhile waits
 *   for the drain, the unload and the load on demand);
 * - the job is evicted by MODELDOCK_MAX_LOADED_MODELS=1 for a second job, repeatedly;
 * - jobs under load are terminated (requests after the TERMINATE get 404, counted apart);
 * - the job's worker is killed and restarted by the reconciler.
 * For each phase: p50/p99/max of the answered requests, the same for the requests sent
 * while an operation was running, and every answer that was not a 2xx.
 *
 *   node --import tsx bench/transitions.bench.ts
 */
import Dockerode from 'dockerode';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  DIGIT_INFER_BODY,
  InferenceLoad,
  failureDigest,
  type LoadSample,
} from '../test/helpers/inference-load.js';
import { getJson, postJson, removeInstanceContainers, uniqueInstance } from '../test/helpers/router.js';
import { TABLES } from './lib/report-tables.js';
import { machine, summarize, writeResult } from './lib/stats.js';
import { startBenchRouter } from './lib/bench-router.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 4);
const STEADY_REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const CYCLES = Number(process.env.BENCH_CYCLES ?? 10);
/** Answers between two transitions: each one starts with the job serving at full speed. */
const BETWEEN = 200;

interface Window {
  from: number;
  to: number;
}

interface Phase {
  name: string;
  /** The router's configuration the phase ran under. */
  router: string;
  from: number;
  to: number;
  /** While an operation (or a kill and its restart) was under way. */
  operations: Window[];
  samples: LoadSample[];
}

const hot = (job: string) => [{ job, path: `/v2/models/${job}/infer` }];

type Timed = (work: () => Promise<unknown>) => Promise<void>;

interface Session {
  url: string;
  load: InferenceLoad;
  call: (method: 'POST' | 'DELETE', pathname: string, body?: unknown) => Promise<unknown>;
  createJob: (job: string) => Promise<unknown>;
  phase: (name: string, body: (timed: Timed) => Promise<void>) => Promise<void>;
}

/**
 * One router process (its own instance and store) with inference load on job `a`: runs
 * the steady state, then `scenario`'s phases, and returns every phase with its samples.
 */
async function withRouter(
  label: string,
  env: Record<string, string>,
  scenario: (session: Session) => Promise<void>,
): Promise<Phase[]> {
  const instance = uniqueInstance('trans');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-bench-'));
  const router = await startBenchRouter(
    {
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_LOG_LEVEL: 'warn',
      ...env,
    },
    path.join(dataDir, 'router.log'),
  );
  const url = router.url;
  const call = async (method: 'POST' | 'DELETE', pathname: string, body?: unknown) => {
    const response =
      method === 'POST'
        ? await postJson(`${url}${pathname}`, body ?? {})
        : { status: (await fetch(`${url}${pathname}`, { method })).status, body: undefined };
    if (response.status >= 300) throw new Error(`${method} ${pathname}: ${response.status}`);
    return response;
  };
  const createJob = (job: string) =>
    call('POST', '/v1/jobs', { job_id: job, model: 'm-131', dataset: 'ds-550' });
  const phases: Phase[] = [];
  const load = new InferenceLoad(url, hot('a'), { connections: CONNECTIONS, maxRequests: 2_000_000 });
  const phase = async (name: string, body: (timed: Timed) => Promise<void>) => {
    const current: Phase = {
      name,
      router: label,
      from: performance.now(),
      to: 0,
      operations: [],
      samples: [],
    };
    await body(async (work) => {
      const from = performance.now();
      await work();
      current.operations.push({ from, to: performance.now() });
    });
    current.to = performance.now();
    phases.push(current);
  };
  try {
    await createJob('a');
    load.start();
    await load.answered(BETWEEN); // warm-up: connections open, JIT warm
    await phase('steady state', () => load.answered(STEADY_REQUESTS));
    await scenario({ url, load, call, createJob, phase });
  } finally {
    await load.stop();
    await router.kill('SIGTERM');
    await removeInstanceContainers(new Dockerode(), instance);
    await rm(dataDir, { recursive: true, force: true });
  }
  for (const p of phases) p.samples = load.samples.filter((s) => s.sentAt >= p.from && s.sentAt <= p.to);
  return phases;
}

async function main() {
  const phases = [
    ...(await withRouter('default', { MODELDOCK_RESTART_BACKOFF_MS: '100' }, async (session) => {
      const { load, call, createJob, phase, url } = session;
      await phase('unload / load', async (timed) => {
        for (let i = 0; i < CYCLES; i++) {
          await timed(() => call('POST', '/v1/jobs/a/unload'));
          await load.answered(BETWEEN);
          await timed(() => call('POST', '/v1/jobs/a/load'));
          await load.answered(BETWEEN);
        }
      });
      await phase('terminate', async (timed) => {
        for (let i = 0; i < CYCLES; i++) {
          const job = `t${i}`;
          await createJob(job);
          load.retarget(hot(job));
          await load.answered(BETWEEN);
          await timed(() => call('DELETE', `/v1/jobs/${job}`));
          load.retarget(hot('a'));
          await load.answered(BETWEEN);
        }
      });
      await phase('worker killed, restarted', async (timed) => {
        const docker = new Dockerode();
        for (let i = 0; i < Math.min(CYCLES, 3); i++) {
          const job = (await getJson(`${url}/v1/jobs/a`)).body;
          await timed(async () => {
            const killedAt = performance.now();
            await docker.getContainer(job.server.container_name).kill();
            // Requests wait for the restarted worker: the first one served after the
            // kill says it is up.
            while (!load.samples.some((s) => s.sentAt > killedAt && s.status === 200)) await load.answered(1);
          });
          await load.answered(BETWEEN);
        }
      });
    })),
    ...(await withRouter(
      'MODELDOCK_MAX_LOADED_MODELS=1',
      { MODELDOCK_MAX_LOADED_MODELS: '1' },
      async (session) => {
        const { load, call, createJob, phase } = session;
        await phase('eviction for a second job', async (timed) => {
          await timed(() => createJob('b')); // evicts a; a's requests load it back, evicting b
          await load.answered(BETWEEN);
          for (let i = 1; i < CYCLES; i++) {
            await call('POST', '/v1/jobs/b/unload');
            // b's load on demand evicts a while a is under load.
            await timed(() => call('POST', '/v2/models/b/infer', JSON.parse(DIGIT_INFER_BODY)));
            await load.answered(BETWEEN);
          }
        });
      },
    )),
  ];

  const inWindow = (s: LoadSample, w: Window) => s.sentAt >= w.from && s.sentAt <= w.to;
  const latencies = (list: LoadSample[]) => summarize(list.map((s) => s.doneAt - s.sentAt));
  const terminatedAnswer = (s: LoadSample) => s.status === 404 && /terminated/.test(s.error ?? '');
  const results = phases.map((p) => {
    const served = p.samples.filter((s) => s.status >= 200 && s.status < 300);
    const duringOps = served.filter((s) => p.operations.some((w) => inWindow(s, w)));
    const terminated = p.samples.filter(terminatedAnswer);
    const errors = p.samples.filter((s) => !(s.status >= 200 && s.status < 300) && !terminatedAnswer(s));
    return {
      phase: p.name,
      router: p.router,
      transitions: p.operations.length,
      requests: p.samples.length,
      served: latencies(served),
      served_during_operations: duringOps.length > 0 ? latencies(duringOps) : null,
      terminated_404: terminated.length,
      errors: errors.length,
      error_digest: errors.length > 0 ? failureDigest(errors) : '',
    };
  });
  const result = {
    machine: machine(),
    request: 'POST /v2/models/{job}/infer (hot path), one 64-pixel FP32 digit',
    load_generator: `undici, ${CONNECTIONS} keep-alive connections, closed loop; ${STEADY_REQUESTS} steady-state requests; ${CYCLES} transitions per phase, ${BETWEEN} answers between two`,
    phases: results,
  };
  const file = writeResult('transitions', result);
  console.log(TABLES['transitions.phases']!(result));
  for (const r of results) if (r.error_digest) console.log(`\n${r.phase}: errors\n${r.error_digest}`);
  console.log(`\nraw results: ${file}`);
}

await main();
