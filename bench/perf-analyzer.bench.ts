/**
 * NVIDIA's perf_analyzer (Triton's own load generator, C++) against modeldock: the same
 * m-131 job over HTTP and gRPC straight to its worker (which serves both on its one
 * port), over HTTP through the router and over gRPC through the router, at concurrency 1
 * and 32, interleaved. perf_analyzer reads the model
 * configuration and statistics extensions to plan its requests and to split the server
 * side of its latency (queue, compute input/infer/output), so a run is also a check that
 * a Triton tool takes them. Installed by scripts/perf-analyzer.sh (see there for why
 * from the tritonclient 2.41.1 wheel).
 *
 *   node --import tsx bench/perf-analyzer.bench.ts
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { freePort } from '../test/helpers/ports.js';
import { postJson, removeInstanceContainers, uniqueInstance } from '../test/helpers/router.js';
import { WORKER_SECRET_ENV, WORKER_SECRET_HEADER } from '../src/worker-secret.js';
import { perfAnalyzer, type PaRow } from './lib/perf-analyzer.js';
import { machine, ms, summarize, table, writeResult } from './lib/stats.js';
import { startBenchRouter } from './lib/bench-router.js';

const run = promisify(execFile);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 3);
const INTERVAL_MS = Number(process.env.BENCH_PA_INTERVAL_MS ?? 3000);

async function main() {
  const { stdout } = await run('bash', [path.join(import.meta.dirname, '../scripts/perf-analyzer.sh')]);
  const binary = stdout.trim();
  const instance = uniqueInstance('pa');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-bench-'));
  const grpcPort = await freePort();
  const router = await startBenchRouter(
    {
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_LOG_LEVEL: 'warn',
      MODELDOCK_WORKER_CPUS: '1',
      MODELDOCK_GRPC_PORT: String(grpcPort),
    },
    path.join(dataDir, 'router.log'),
  );
  try {
    const created = await postJson(`${router.url}/v1/jobs`, {
      job_id: 'p1',
      model: 'm-131',
      dataset: 'ds-550',
    });
    if (created.status !== 201) throw new Error(JSON.stringify(created.body));
    // The worker obeys only holders of its secret: sent to it directly, the request carries it.
    const container = await new Dockerode().getContainer(created.body.server.container_name).inspect();
    const secret =
      container.Config.Env.find((e) => e.startsWith(`${WORKER_SECRET_ENV}=`))?.split('=')[1] ?? '';
    const targets = {
      'worker HTTP': {
        url: new URL(created.body.server.endpoint as string).host,
        protocol: 'http' as const,
        headers: [`${WORKER_SECRET_HEADER}:${secret}`],
      },
      'worker gRPC': {
        url: new URL(created.body.server.endpoint as string).host,
        protocol: 'grpc' as const,
        headers: [`${WORKER_SECRET_HEADER}:${secret}`],
      },
      'modeldock HTTP': { url: new URL(router.url).host, protocol: 'http' as const },
      'modeldock gRPC': { url: `127.0.0.1:${grpcPort}`, protocol: 'grpc' as const },
    };
    const results: Record<string, Record<string, PaRow[]>> = {};
    const unstable: string[] = [];
    for (const concurrency of [1, 32]) {
      for (let trial = 0; trial < TRIALS; trial++) {
        for (const [name, target] of Object.entries(targets)) {
          const row = await perfAnalyzer(
            binary,
            { ...target, model: 'p1' },
            concurrency,
            path.join(dataDir, `pa-${trial}.csv`),
            INTERVAL_MS,
          );
          if (row) ((results[`c${concurrency}`] ??= {})[name] ??= []).push(row);
          else unstable.push(`${name} c=${concurrency}`);
        }
      }
    }
    const median = (rows: PaRow[], key: keyof PaRow) => summarize(rows.map((r) => r[key])).median;
    const summary = Object.fromEntries(
      Object.entries(results).map(([level, byTarget]) => [
        level,
        Object.fromEntries(
          Object.entries(byTarget).map(([name, rows]) => [
            name,
            {
              rps: median(rows, 'rps'),
              p50_ms: median(rows, 'p50_ms'),
              p99_ms: median(rows, 'p99_ms'),
              server_queue_us: median(rows, 'server_queue_us'),
              server_compute_infer_us: median(rows, 'server_compute_infer_us'),
            },
          ]),
        ),
      ]),
    );
    const file = writeResult('perf-analyzer', {
      machine: machine(),
      tool: 'perf_analyzer (tritonclient 2.41.1 wheel), -m p1, batch 1 of m-131 (max_batch_size 64, dims [64]), random FP32 data',
      measurement: `--measurement-interval ${INTERVAL_MS} ms, perf_analyzer's stability rule at 100 % (its default 10 % is never met on this shared machine), at most 10 windows; runs without stable windows are counted in unstable_runs; ${TRIALS} runs per target and level, interleaved; medians`,
      summary,
      unstable_runs: unstable,
      runs: results,
    });
    for (const [level, byTarget] of Object.entries(summary)) {
      console.log(`\nperf_analyzer, concurrency ${level.slice(1)}\n`);
      console.log(
        table(
          ['target', 'throughput', 'p50', 'p99', 'server queue', 'server compute infer'],
          Object.entries(byTarget).map(([name, s]) => [
            name,
            `${Math.round(s.rps)} infer/s`,
            ms(s.p50_ms),
            ms(s.p99_ms),
            `${s.server_queue_us} µs`,
            `${s.server_compute_infer_us} µs`,
          ]),
        ),
      );
    }
    if (unstable.length) console.log(`\nruns without stable measurement windows: ${unstable.join(', ')}`);
    console.log(`raw results: ${file}`);
  } finally {
    await router.kill('SIGTERM');
    await removeInstanceContainers(new Dockerode(), instance);
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
