/**
 * Scale and concurrency, in one run, of a router run as `npm start` runs it (compiled, its
 * V8 flag, the gRPC service on):
 * - with 50, 100 and 200 servers (a small worker profile: 128 MiB, 0.25 CPU), the
 *   router's memory (RSS of its process), a full reconcile pass, listing all servers,
 *   and one DEPLOY_UNLOAD + DEPLOY_LOAD while all of them exist;
 * - 1, 4 and 16 DEPLOY_CREATE on different jobs at once: wall time and per-operation
 *   median, against the same number created one after the other.
 *
 *   node --import tsx bench/scale.bench.ts      (BENCH_SCALE=50,100,200)
 */
import Dockerode from 'dockerode';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../test/helpers/ports.js';
import { getJson, postJson, removeInstanceContainers, uniqueInstance } from '../test/helpers/router.js';
import { TABLES } from './lib/report-tables.js';
import { machine, summarize, writeResult } from './lib/stats.js';
import { writeScaleCharts } from './lib/bench-charts.js';
import { startBenchRouter } from './lib/bench-router.js';

const SIZES = (process.env.BENCH_SCALE ?? '50,100,200').split(',').map(Number);
const docker = new Dockerode();

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
}

/** What the router's memory is made of, from its own Prometheus metrics (MiB). */
async function memoryBreakdown(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => {
    const match = new RegExp(`^modeldock_${name} (\\S+)$`, 'm').exec(text);
    return match ? Math.round((Number(match[1]) / 1024 ** 2) * 10) / 10 : NaN;
  };
  return {
    heap_total_mib: value('nodejs_heap_size_total_bytes'),
    heap_used_mib: value('nodejs_heap_size_used_bytes'),
    external_mib: value('nodejs_external_memory_bytes'),
  };
}

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [performance.now() - started, value];
}

async function create(url: string, jobId: string): Promise<number> {
  const [elapsed, response] = await timed(() =>
    postJson(`${url}/v1/jobs`, { job_id: jobId, model: 'm-131', dataset: 'ds-550' }),
  );
  if (response.status !== 201) throw new Error(`${jobId}: ${JSON.stringify(response.body)}`);
  return elapsed;
}

async function main() {
  const instance = uniqueInstance('scale');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-scale-'));
  // As `npm start` runs it: compiled, with its V8 flag and the gRPC service listening (the
  // default; the test helper turns gRPC off unless given a port).
  const router = await startBenchRouter(
    {
      MODELDOCK_GRPC_PORT: String(await freePort()),
      // The one setting apart from npm start's defaults: room for the largest size (64 by default).
      MODELDOCK_MAX_SERVERS: String(Math.max(...SIZES)),
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_LOG_LEVEL: 'warn',
      MODELDOCK_WORKER_MEMORY: '128m',
      MODELDOCK_WORKER_CPUS: '0.25',
      MODELDOCK_WORKER_PIDS: '64',
      MODELDOCK_READY_TIMEOUT_MS: '120000',
    },
    path.join(dataDir, 'router.log'),
  );
  const pid = router.child.pid!;
  // The fixed cost: Node.js, the libraries and an empty state, before any server exists.
  const atStart = { router_rss_mib: await rssMiB(pid), router_memory: await memoryBreakdown(router.url) };
  const concurrency: { at_once: number; wall_ms: number; per_operation: ReturnType<typeof summarize> }[] = [];
  const scale: Record<string, unknown>[] = [];
  try {
    let created = 0;
    // Concurrency first, on an otherwise empty engine.
    for (const atOnce of [1, 4, 16]) {
      const jobs = Array.from({ length: atOnce }, (_, i) => `c${atOnce}-${i}`);
      const [wall, times] = await timed(() => Promise.all(jobs.map((job) => create(router.url, job))));
      created += atOnce;
      concurrency.push({ at_once: atOnce, wall_ms: Math.round(wall), per_operation: summarize(times) });
    }
    for (const size of SIZES) {
      while (created < size) {
        const batch = Array.from({ length: Math.min(8, size - created) }, (_, i) => `s${created + i}`);
        await Promise.all(batch.map((job) => create(router.url, job)));
        created += batch.length;
      }
      const reconciles: number[] = [];
      for (let i = 0; i < 5; i++) {
        const [elapsed, report] = await timed(() => postJson(`${router.url}/v1/reconcile`, {}));
        if (report.body.servers < size) throw new Error(`reconcile saw ${report.body.servers} servers`);
        reconciles.push(elapsed);
      }
      const lists: number[] = [];
      for (let i = 0; i < 5; i++) lists.push((await timed(() => getJson(`${router.url}/v1/servers`)))[0]);
      const cycles: number[] = [];
      for (let i = 0; i < 5; i++) {
        const [elapsed] = await timed(async () => {
          for (const action of ['unload', 'load']) {
            const response = await postJson(`${router.url}/v1/jobs/c1-0/${action}`, {});
            if (response.status !== 200) throw new Error(`${action}: ${JSON.stringify(response.body)}`);
          }
        });
        cycles.push(elapsed);
      }
      scale.push({
        servers: size,
        router_rss_mib: await rssMiB(pid),
        router_memory: await memoryBreakdown(router.url),
        reconcile_pass: summarize(reconciles),
        list_servers: summarize(lists),
        unload_plus_load: summarize(cycles),
      });
    }
  } finally {
    await router.kill('SIGTERM');
    await removeInstanceContainers(docker, instance);
    await rm(dataDir, { recursive: true, force: true });
  }
  const result = {
    machine: machine(),
    router: 'compiled, --max-semi-space-size=8, gRPC on (as npm start runs it)',
    at_start: atStart,
    scale,
    concurrency,
  };
  const file = writeResult('scale', result);
  for (const key of ['scale.memory', 'scale.concurrency', 'scale.targets'])
    console.log(`${TABLES[key]!(result)}\n`);
  console.log(`\nraw results: ${file}`);
  console.log(`charts: ${(await writeScaleCharts(result)).join(', ')}`);
}

await main();
