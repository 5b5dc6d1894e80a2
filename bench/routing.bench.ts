/**
 * Routing overhead: the same Open Inference Protocol request (one m-131 digit) sent to
 * the worker directly, through the modeldock router (a separate process, as deployed),
 * and through nginx configured as a keep-alive reverse proxy in front of the same worker.
 * p50/p99 latency at concurrency 1 and throughput at concurrency 32, in one run.
 *
 *   node --import tsx bench/routing.bench.ts   (needs nginx: apt-get install nginx-light)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { Pool } from 'undici';
import { freePort } from '../test/helpers/ports.js';
import { postJson, removeInstanceContainers, uniqueInstance } from '../test/helpers/router.js';
import { spawnRouter } from '../test/helpers/router-process.js';
import { machine, ms, ratio, summarize, table, writeResult } from './lib/stats.js';
import { DIGITS } from '../test/helpers/fixtures.js';
import { writeRoutingCharts } from './lib/bench-charts.js';

const LATENCY_REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const THROUGHPUT_SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const record = DIGITS[0]!;
const body = JSON.stringify({
  inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
  outputs: [{ name: 'label' }],
});

async function send(pool: Pool, pathname: string): Promise<void> {
  const response = await pool.request({
    method: 'POST',
    path: pathname,
    headers: { 'content-type': 'application/json' },
    body,
  });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${response.statusCode}: ${text}`);
}

async function latency(origin: string, pathname: string): Promise<number[]> {
  const pool = new Pool(origin, { connections: 1 });
  try {
    for (let i = 0; i < 300; i++) await send(pool, pathname); // warm-up
    const samples: number[] = [];
    for (let i = 0; i < LATENCY_REQUESTS; i++) {
      const started = performance.now();
      await send(pool, pathname);
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    await pool.close();
  }
}

async function throughput(origin: string, pathname: string, concurrency = 32): Promise<number> {
  const pool = new Pool(origin, { connections: concurrency });
  try {
    const warmUntil = Date.now() + 1000;
    const stopAt = warmUntil + THROUGHPUT_SECONDS * 1000;
    let completed = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < stopAt) {
          await send(pool, pathname);
          if (Date.now() > warmUntil) completed++;
        }
      }),
    );
    return completed / THROUGHPUT_SECONDS;
  } finally {
    await pool.close();
  }
}

async function startNginx(upstream: string): Promise<{ origin: string; child: ChildProcess; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-nginx-'));
  const port = await freePort();
  const target = new URL(upstream);
  await writeFile(
    path.join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream worker { server ${target.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://worker;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'inherit' });
  const origin = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${origin}/v2/health/ready`);
      return { origin, child, dir };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error('nginx did not start');
}

async function main() {
  const instance = uniqueInstance('route');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-bench-'));
  const router = await spawnRouter(
    {
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_LOG_LEVEL: 'warn',
      MODELDOCK_WORKER_CPUS: '1',
    },
    path.join(dataDir, 'router.log'),
    'compiled',
  );
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  try {
    const created = await postJson(`${router.url}/v1/jobs`, {
      job_id: 'r1',
      model: 'm-131',
      dataset: 'ds-550',
    });
    if (created.status !== 201) throw new Error(JSON.stringify(created.body));
    const worker = created.body.server.endpoint as string;
    nginx = await startNginx(worker);
    const path_ = '/v2/models/r1/infer';
    const targets = { direct: worker, nginx: nginx.origin, modeldock: router.url };

    const lat: Record<string, ReturnType<typeof summarize>> = {};
    const tput: Record<string, number> = {};
    // Interleave the targets so machine drift hits them alike.
    for (const round of [0, 1]) {
      for (const [name, origin] of Object.entries(targets)) {
        const samples = await latency(origin, path_);
        if (round === 1) lat[name] = summarize(samples);
      }
    }
    for (const [name, origin] of Object.entries(targets)) tput[name] = await throughput(origin, path_);

    const result = {
      machine: machine(),
      request: 'POST /v2/models/{job}/infer, one 64-pixel FP32 digit, output label',
      latency_c1: lat,
      overhead_p50_ms: {
        modeldock: lat.modeldock!.median - lat.direct!.median,
        nginx: lat.nginx!.median - lat.direct!.median,
      },
      throughput_c32_rps: tput,
      throughput_ratio_modeldock_to_nginx: tput.modeldock! / tput.nginx!,
    };
    const file = writeResult('routing', result);
    console.log(
      table(
        ['path', 'p50 (c=1)', 'p99 (c=1)', 'added at p50', 'throughput (c=32)'],
        Object.keys(targets).map((name) => [
          name,
          ms(lat[name]!.median),
          ms(lat[name]!.p99),
          name === 'direct' ? '—' : ms(lat[name]!.median - lat.direct!.median),
          `${Math.round(tput[name]!)} req/s`,
        ]),
      ),
    );
    console.log(`\nmodeldock / nginx throughput: ${ratio(tput.modeldock!, tput.nginx!)}`);
    console.log(`raw results: ${file}`);
    console.log(`charts: ${writeRoutingCharts(result).join(', ')}`);
  } finally {
    nginx?.child.kill('SIGTERM');
    await router.kill('SIGTERM');
    await removeInstanceContainers(new Dockerode(), instance);
    if (nginx) await rm(nginx.dir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
