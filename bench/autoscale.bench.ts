/**
 * Replicas and autoscaling, measured against the router as deployed (a separate,
 * compiled process on the Docker runtime), each worker limited to one CPU
 * (MODELDOCK_WORKER_CPUS=1):
 * - throughput and p50/p99 of `POST /v2/models/{job}/infer` (closed loop, one m-131
 *   digit) with a job of 1, 2 and 3 fixed replicas; 1 replica is the baseline of the
 *   same run. The router and the load generator share the machine's CPUs with the
 *   workers: the ratio says what this machine allows;
 * - overload to a new ready replica: a job at 1 of max 2 replicas gets more requests in
 *   flight than its scale target, from the first request of that load to the scale-up's
 *   replica being ready (its DEPLOY_CREATE `scale_up` finishing), with the default up
 *   delay, without and with the warm pool;
 * - cold start from zero: a job with min 0, scaled to zero, answers its next request:
 *   that request's latency, without and with the warm pool.
 * Every request's status is kept: the run reports failed requests (the target is zero).
 *
 *   node --import tsx bench/autoscale.bench.ts
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
import { machine, summarize, writeResult, type Summary } from './lib/stats.js';
import { startBenchRouter } from './lib/bench-router.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 6000);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 5);
/** Short, so the scale-up and cold-start trials can follow each other; the up delay stays the default. */
const DOWN_DELAY_MS = 2_000;

const hot = (job: string) => [{ job, path: `/v2/models/${job}/infer` }];

interface Router {
  url: string;
  call: (pathname: string, body?: unknown) => Promise<any>;
  job: (jobId: string) => Promise<any>;
  operations: (jobId: string) => Promise<any[]>;
  close: () => Promise<void>;
}

async function startRouter(env: Record<string, string>): Promise<Router> {
  const instance = uniqueInstance('scale');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-bench-'));
  const router = await startBenchRouter(
    {
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_LOG_LEVEL: 'warn',
      MODELDOCK_WORKER_CPUS: '1',
      MODELDOCK_SCALE_DOWN_DELAY_MS: String(DOWN_DELAY_MS),
      ...env,
    },
    path.join(dataDir, 'router.log'),
  );
  const url = router.url;
  const call = async (pathname: string, body: unknown = {}) => {
    const response = await postJson(`${url}${pathname}`, body);
    if (response.status >= 300)
      throw new Error(`POST ${pathname}: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body;
  };
  return {
    url,
    call,
    job: async (jobId) => (await getJson(`${url}/v1/jobs/${jobId}`)).body,
    operations: async (jobId) =>
      (await getJson(`${url}/v1/operations?job_id=${jobId}&limit=200`)).body.operations,
    close: async () => {
      await router.kill('SIGTERM');
      await removeInstanceContainers(new Dockerode(), instance);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves once `check` holds, looking every 50 ms; rejects after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface ReplicaRun {
  replicas: number;
  requests: number;
  seconds: number;
  throughput_rps: number;
  latency_ms: Summary;
  failed: number;
  failure_digest: string;
}

/** Closed-loop load on a job of `n` fixed replicas. */
async function throughputWith(router: Router, n: number): Promise<ReplicaRun> {
  const jobId = `fixed${n}`;
  await router.call('/v1/jobs', {
    job_id: jobId,
    model: 'm-131',
    dataset: 'ds-550',
    replicas: { min: n, max: n },
  });
  const load = new InferenceLoad(router.url, hot(jobId), {
    connections: CONNECTIONS,
    maxRequests: 1e9,
  }).start();
  await load.answered(500); // warm-up: connections open, JIT warm on every replica
  const from = performance.now();
  const first = load.samples.length;
  await load.answered(REQUESTS);
  const to = performance.now();
  const samples = (await load.stop()).slice(first).filter((s) => s.doneAt <= to);
  await router.call(`/v1/jobs/${jobId}/terminate`);
  const failed = samples.filter((s) => s.status !== 200);
  return {
    replicas: n,
    requests: samples.length,
    seconds: Math.round((to - from) / 10) / 100,
    throughput_rps: Math.round(samples.length / ((to - from) / 1000)),
    latency_ms: summarize(samples.map((s) => s.doneAt - s.sentAt)),
    failed: failed.length,
    failure_digest: failureDigest(failed),
  };
}

interface ScaleUpTrial {
  overload_to_ready_ms: number;
  /** Of which the scale-up operation itself (create or take from the pool, start, wait, load). */
  operation_ms: number;
  took_pool_worker: boolean;
}

/**
 * A job at 1 of max 2 replicas, scale target 1, gets CONNECTIONS requests in flight:
 * from the load's first request to the second replica being ready.
 */
async function overloadToReady(router: Router, trial: number, samples: LoadSample[]): Promise<ScaleUpTrial> {
  const jobId = `burst${trial}`;
  await router.call('/v1/jobs', {
    job_id: jobId,
    model: 'm-131',
    dataset: 'ds-550',
    replicas: { min: 1, max: 2 },
    scale_target: 1,
  });
  const started = Date.now();
  const load = new InferenceLoad(router.url, hot(jobId), {
    connections: CONNECTIONS,
    maxRequests: 1e9,
  }).start();
  let scaleUp: any;
  await until(
    async () => {
      scaleUp = (await router.operations(jobId)).find(
        (o) => o.reason === 'scale_up' && o.status !== 'running',
      );
      return scaleUp !== undefined;
    },
    30_000,
    `${jobId}: scale-up`,
  );
  samples.push(...(await load.stop()));
  if (scaleUp.status !== 'succeeded')
    throw new Error(`${jobId}: scale-up ${scaleUp.status}: ${JSON.stringify(scaleUp.error)}`);
  await router.call(`/v1/jobs/${jobId}/terminate`);
  return {
    overload_to_ready_ms: Date.parse(scaleUp.finished_at) - started,
    operation_ms: scaleUp.duration_ms,
    took_pool_worker: !scaleUp.steps.some((s: { name: string }) => s.name === 'start'),
  };
}

interface ColdStartTrial {
  first_request_ms: number;
  operation_ms: number;
  status: number;
}

/** A job with min 0 scaled to zero; its next request, timed. */
async function coldStart(router: Router, trial: number): Promise<ColdStartTrial> {
  const jobId = `zero${trial}`;
  await router.call('/v1/jobs', {
    job_id: jobId,
    model: 'm-131',
    dataset: 'ds-550',
    replicas: { min: 0, max: 1 },
  });
  await until(
    async () => (await router.job(jobId)).state === 'scaled_to_zero',
    DOWN_DELAY_MS + 30_000,
    `${jobId}: zero`,
  );
  const sent = performance.now();
  const response = await fetch(`${router.url}/v2/models/${jobId}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: DIGIT_INFER_BODY,
  });
  await response.text();
  const first_request_ms = Math.round((performance.now() - sent) * 10) / 10;
  const op = (await router.operations(jobId)).find((o) => o.reason === 'scale_from_zero');
  await router.call(`/v1/jobs/${jobId}/terminate`);
  return { first_request_ms, operation_ms: op?.duration_ms ?? NaN, status: response.status };
}

async function main() {
  const replicas: ReplicaRun[] = [];
  const scaleUp: Record<string, ScaleUpTrial[]> = { cold: [], warm_pool: [] };
  const coldStarts: Record<string, ColdStartTrial[]> = { cold: [], warm_pool: [] };
  const loadSamples: LoadSample[] = [];
  for (const [variant, env] of [
    ['cold', {}],
    ['warm_pool', { MODELDOCK_WARM_POOL: '2' }],
  ] as const) {
    const router = await startRouter(env);
    try {
      if (variant === 'cold') {
        for (const n of [1, 2, 3]) {
          replicas.push(await throughputWith(router, n));
          console.log(`${n} replica(s): ${replicas.at(-1)!.throughput_rps} req/s`);
        }
      }
      for (let trial = 0; trial < TRIALS; trial++) {
        // With the pool on, each trial starts with a full pool (as a steady router has).
        if (variant === 'warm_pool') {
          await until(
            async () => (await getJson(`${router.url}/v1/pool`)).body.ready >= 2,
            60_000,
            'warm pool full',
          );
        }
        scaleUp[variant]!.push(await overloadToReady(router, trial, loadSamples));
        coldStarts[variant]!.push(await coldStart(router, trial));
        console.log(
          `${variant} trial ${trial}: overload → ready ${scaleUp[variant]!.at(-1)!.overload_to_ready_ms} ms, ` +
            `cold start ${coldStarts[variant]!.at(-1)!.first_request_ms} ms`,
        );
      }
    } finally {
      await router.close();
    }
  }
  const base = replicas[0]!.throughput_rps;
  const failedScale = loadSamples.filter((s) => s.status !== 200);
  const result = {
    machine: machine(),
    request: 'POST /v2/models/{job}/infer (hot path), one 64-pixel FP32 digit',
    worker_cpus: 1,
    load_generator: `undici, ${CONNECTIONS} keep-alive connections, closed loop; ${REQUESTS} measured requests per replica count after 500 of warm-up`,
    scaling: `defaults (MODELDOCK_SCALE_UP_DELAY_MS=1000), MODELDOCK_SCALE_DOWN_DELAY_MS=${DOWN_DELAY_MS} so trials follow each other; overload: scale_target 1, ${CONNECTIONS} connections`,
    replicas: replicas.map((r) => ({
      ...r,
      throughput_ratio_to_one: Math.round((r.throughput_rps / base) * 100) / 100,
    })),
    overload_to_ready_ms: {
      cold: summarize(scaleUp.cold!.map((t) => t.overload_to_ready_ms)),
      warm_pool: summarize(scaleUp.warm_pool!.map((t) => t.overload_to_ready_ms)),
    },
    scale_up_operation_ms: {
      cold: summarize(scaleUp.cold!.map((t) => t.operation_ms)),
      warm_pool: summarize(scaleUp.warm_pool!.map((t) => t.operation_ms)),
    },
    scale_up_took_pool_worker: scaleUp.warm_pool!.filter((t) => t.took_pool_worker).length,
    cold_start_first_request_ms: {
      cold: summarize(coldStarts.cold!.map((t) => t.first_request_ms)),
      warm_pool: summarize(coldStarts.warm_pool!.map((t) => t.first_request_ms)),
    },
    cold_start_failed: [...coldStarts.cold!, ...coldStarts.warm_pool!].filter((t) => t.status !== 200).length,
    trials: TRIALS,
    scale_up_requests: loadSamples.length,
    scale_up_failed: failedScale.length,
    scale_up_failure_digest: failureDigest(failedScale),
  };
  const file = writeResult('autoscale', result);
  console.log(TABLES['autoscale.replicas']!(result));
  console.log(TABLES['autoscale.scaling']!(result));
  console.log(`\nraw results: ${file}`);
}

await main();
