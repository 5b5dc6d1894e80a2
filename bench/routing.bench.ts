/**
 * Routing overhead: the same Open Inference Protocol request (one m-131 digit) sent to
 * the worker directly, through the modeldock router (a separate process, as deployed),
 * through nginx configured as a keep-alive reverse proxy in front of the same worker, and
 * through the leanest Node.js proxy (lib/lean-node-proxy.ts: what any Node.js router
 * costs at least), in one run:
 * - p50/p99 latency at concurrency 1 (undici, sequential requests, per-request samples);
 * - throughput at concurrency 32 from wrk (a C load generator, one thread: it takes a
 *   small and equal share of the two CPUs, so the proxies are what differ), repeated
 *   trials interleaved, with each proxy's and the worker's CPU time per request read
 *   from /proc and how busy the whole machine was.
 *
 * - gRPC (inference.GRPCInferenceService, ModelInfer with raw FP32 bytes, from grpc-js):
 *   p50/p99 in the same interleaved rounds through the router and straight to the
 *   worker's own gRPC service (the baseline: the same client, protocol and call), with
 *   the router's CPU time per call; beside them the worker answering the HTTP binary
 *   request the router makes of each call, and the two ways a router can route gRPC to
 *   such a worker at their leanest (lib/lean-grpc-forwarders.ts: translate to HTTP, as
 *   the router does, or forward the gRPC bytes); throughput at concurrency 32 from a
 *   Node.js generator (wrk speaks no gRPC) beside HTTP from the same kind of generator.
 *
 *   node --import tsx bench/routing.bench.ts   (needs nginx and wrk: apt-get install nginx-light wrk)
 */
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { Pool } from 'undici';
import { freePort } from '../test/helpers/ports.js';
import { postJson, removeInstanceContainers, uniqueInstance } from '../test/helpers/router.js';
import { machine, ms, ratio, summarize, table, writeResult } from './lib/stats.js';
import { DIGITS } from '../test/helpers/fixtures.js';
import { writeRoutingCharts } from './lib/bench-charts.js';
import {
  binaryHttpSender,
  closedLoopThroughput,
  grpcSender,
  sequentialLatency,
  type Sender,
} from './lib/grpc-load.js';
import { startBenchRouter } from './lib/bench-router.js';

const LATENCY_REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const THROUGHPUT_SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 3);
const CONCURRENCY = 32;
const run = promisify(execFile);
/** Clock ticks per second of /proc's CPU times (USER_HZ): 100 on Linux x86-64. */
const CLOCK_TICKS = 100;
const record = DIGITS[0]!;
const body = JSON.stringify({
  inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
  outputs: [{ name: 'label' }],
});

async function send(pool: Pool, pathname: string, extra: Record<string, string>): Promise<void> {
  const response = await pool.request({
    method: 'POST',
    path: pathname,
    headers: { 'content-type': 'application/json', ...extra },
    body,
  });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${response.statusCode}: ${text}`);
}

/** The JSON request of the HTTP measurements, as a Sender for the Node.js generator. */
function jsonHttpSender(origin: string, pathname: string, extra: Record<string, string> = {}): Sender {
  const pool = new Pool(origin, { connections: CONCURRENCY });
  return { send: () => send(pool, pathname, extra), close: () => pool.close() };
}

async function latency(origin: string, pathname: string, extra: Record<string, string>): Promise<number[]> {
  const pool = new Pool(origin, { connections: 1 });
  try {
    for (let i = 0; i < 300; i++) await send(pool, pathname, extra); // warm-up
    const samples: number[] = [];
    for (let i = 0; i < LATENCY_REQUESTS; i++) {
      const started = performance.now();
      await send(pool, pathname, extra);
      samples.push(performance.now() - started);
    }
    return samples;
  } finally {
    await pool.close();
  }
}

/** CPU time (user + system) a process has used so far, in microseconds. */
async function cpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const cpu = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  const idle = cpu[3]! + cpu[4]!;
  return { busy: total - idle, total };
}

/** The first child of a process (nginx's worker under its master, node under docker-init). */
async function childOf(pid: number): Promise<number> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(' ');
  if (!children[0]) throw new Error(`process ${pid} has no child`);
  return Number(children[0]);
}

interface ThroughputTrial {
  rps: number;
  proxy_cpu_us_per_request: number | null;
  worker_cpu_us_per_request: number;
  machine_busy: number;
}

async function throughput(
  url: string,
  luaScript: string,
  pids: { proxy: number | null; worker: number },
): Promise<ThroughputTrial> {
  const wrk = (seconds: number) =>
    run('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${seconds}s`, '-s', luaScript, url], { timeout: 120_000 });
  await wrk(1); // warm-up: connections open, JIT warm
  const before = {
    proxy: pids.proxy ? await cpuMicros(pids.proxy) : 0,
    worker: await cpuMicros(pids.worker),
    machine: await machineTicks(),
  };
  const { stdout } = await wrk(THROUGHPUT_SECONDS);
  const after = {
    proxy: pids.proxy ? await cpuMicros(pids.proxy) : 0,
    worker: await cpuMicros(pids.worker),
    machine: await machineTicks(),
  };
  if (/Non-2xx|Socket errors/.test(stdout)) throw new Error(`wrk saw errors:\n${stdout}`);
  const requests = Number(/(\d+) requests in/.exec(stdout)![1]);
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)![1]),
    proxy_cpu_us_per_request: pids.proxy ? round((after.proxy - before.proxy) / requests) : null,
    worker_cpu_us_per_request: round((after.worker - before.worker) / requests),
    machine_busy:
      Math.round(
        ((after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total)) * 1000,
      ) / 1000,
  };
}

/**
 * Every HTTP path must hand the client the same answer, framed alike: the worker's
 * Content-Length, not chunked (a chunked answer is more bytes and another parse).
 */
async function assertSameFraming(
  targets: Record<string, string>,
  path_: string,
  extraHeaders: (name: string) => Record<string, string>,
): Promise<void> {
  const framing: Record<string, string> = {};
  for (const [name, origin] of Object.entries(targets)) {
    const response = await fetch(`${origin}${path_}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...extraHeaders(name) },
      body,
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${name} answered ${response.status}: ${text}`);
    framing[name] =
      `content-length ${response.headers.get('content-length')}, ` +
      `transfer-encoding ${response.headers.get('transfer-encoding')}, body ${text.length} bytes`;
  }
  if (new Set(Object.values(framing)).size !== 1)
    throw new Error(`the paths frame their answers differently: ${JSON.stringify(framing)}`);
}

async function startLeanProxy(
  upstream: string,
  secret: string,
): Promise<{ origin: string; child: ChildProcess }> {
  const port = await freePort();
  const child = fork(
    path.join(import.meta.dirname, 'lib/lean-node-proxy.ts'),
    [String(port), upstream, secret],
    {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`lean proxy exited with ${code}`)));
  });
  return { origin: `http://127.0.0.1:${port}`, child };
}

async function startLeanGrpc(
  mode: 'translate' | 'forward',
  worker: string,
  model: string,
  secret: string,
): Promise<{ address: string; child: ChildProcess }> {
  const port = await freePort();
  const child = fork(
    path.join(import.meta.dirname, 'lib/lean-grpc-forwarders.ts'),
    [mode, String(port), worker, model, secret],
    { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`lean gRPC ${mode} exited with ${code}`)));
  });
  return { address: `127.0.0.1:${port}`, child };
}

async function startNginx(
  upstream: string,
  secret: string,
): Promise<{ origin: string; child: ChildProcess; dir: string }> {
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
      proxy_set_header x-modeldock-worker-secret "${secret}";
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
  const grpcPort = await freePort();
  const router = await startBenchRouter(
    {
      MODELDOCK_GRPC_PORT: String(grpcPort),
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_LOG_LEVEL: 'warn',
      MODELDOCK_WORKER_CPUS: '1',
    },
    path.join(dataDir, 'router.log'),
  );
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
  let lean: Awaited<ReturnType<typeof startLeanProxy>> | undefined;
  const leanGrpc: Awaited<ReturnType<typeof startLeanGrpc>>[] = [];
  try {
    const created = await postJson(`${router.url}/v1/jobs`, {
      job_id: 'r1',
      model: 'm-131',
      dataset: 'ds-550',
    });
    if (created.status !== 201) throw new Error(JSON.stringify(created.body));
    const worker = created.body.server.endpoint as string;
    // The worker obeys only holders of its secret: nginx and the lean proxy send it as the
    // router does; requests sent to the worker directly carry it themselves.
    const container = await new Dockerode().getContainer(created.body.server.container_name).inspect();
    const secret =
      container.Config.Env.find((e) => e.startsWith('MODELDOCK_WORKER_SECRET='))?.split('=')[1] ?? '';
    const extraHeaders = (name: string): Record<string, string> =>
      name === 'direct' ? { 'x-modeldock-worker-secret': secret } : {};
    nginx = await startNginx(worker, secret);
    lean = await startLeanProxy(worker, secret);
    const path_ = '/v2/models/r1/infer';
    const targets: Record<string, string> = {
      direct: worker,
      nginx: nginx.origin,
      lean: lean.origin,
      modeldock: router.url,
    };
    await assertSameFraming(targets, path_, extraHeaders);
    const workerPid = await childOf(container.State.Pid);
    const proxyPids: Record<string, number | null> = {
      direct: null,
      nginx: await childOf(nginx.child.pid!),
      lean: lean.child.pid!,
      modeldock: router.child.pid!,
    };
    const luaScript = (name: string) => path.join(dataDir, `post-${name}.lua`);
    for (const name of Object.keys(targets)) {
      const secretLine = name === 'direct' ? `wrk.headers["x-modeldock-worker-secret"] = "${secret}"\n` : '';
      await writeFile(
        luaScript(name),
        `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n${secretLine}wrk.body = [[${body}]]\n`,
      );
    }

    // Latency: a warm-up round, then TRIALS rounds with the targets interleaved, so
    // machine drift hits them alike. Each round's p50 and p99 per target; what a proxy
    // adds is taken round by round against the worker measured in the same round.
    // gRPC takes part in the same rounds: through the router, straight to the worker's
    // own gRPC service (the baseline), the worker answering the binary HTTP request the
    // router makes of each gRPC call, and the two lean ways of routing gRPC.
    const pixels = record.inputs.pixels;
    const secretMetadata = { 'x-modeldock-worker-secret': secret };
    const workerAddress = new URL(worker).host;
    leanGrpc.push(await startLeanGrpc('translate', worker, 'r1', secret));
    leanGrpc.push(await startLeanGrpc('forward', worker, 'r1', secret));
    const grpcTargets: Record<string, () => Sender> = {
      direct_grpc: () => grpcSender(workerAddress, 'r1', pixels, secretMetadata),
      direct_binary: () => binaryHttpSender(worker, path_, pixels, 1, extraHeaders('direct')),
      modeldock_grpc: () => grpcSender(`127.0.0.1:${grpcPort}`, 'r1', pixels),
      lean_grpc_translate: () => grpcSender(leanGrpc[0]!.address, 'r1', pixels),
      lean_grpc_forward: () => grpcSender(leanGrpc[1]!.address, 'r1', pixels),
    };
    // CPU time per call of the process in the middle, over a latency round (sequential calls).
    const middle: Record<string, number> = {
      modeldock: router.child.pid!,
      modeldock_grpc: router.child.pid!,
      lean: lean.child.pid!,
      lean_grpc_translate: leanGrpc[0]!.child.pid!,
      lean_grpc_forward: leanGrpc[1]!.child.pid!,
    };
    const sequentialCpu: Record<string, number[]> = {};
    const measured = async (name: string, run: () => Promise<number[]>) => {
      const pid = middle[name];
      const before = pid ? await cpuMicros(pid) : 0;
      const samples = await run();
      if (pid) (sequentialCpu[name] ??= []).push(((await cpuMicros(pid)) - before) / (samples.length + 300));
      return samples;
    };
    const rounds: Record<string, ReturnType<typeof summarize>[]> = {};
    for (let round = -1; round < TRIALS; round++) {
      for (const [name, origin] of Object.entries(targets)) {
        const samples = await measured(name, () => latency(origin, path_, extraHeaders(name)));
        if (round >= 0) (rounds[name] ??= []).push(summarize(samples));
      }
      for (const [name, make] of Object.entries(grpcTargets)) {
        const sender = make();
        const samples = await measured(name, () =>
          sequentialLatency(sender, LATENCY_REQUESTS).finally(() => sender.close()),
        );
        if (round >= 0) (rounds[name] ??= []).push(summarize(samples));
      }
    }
    const median = (values: number[]) => summarize(values).median;
    const lat = Object.fromEntries(
      Object.entries(rounds).map(([name, list]) => [
        name,
        { median: median(list.map((r) => r.median)), p99: median(list.map((r) => r.p99)) },
      ]),
    );
    const added = (name: string, baseline = 'direct') =>
      summarize(rounds[name]!.map((r, i) => r.median - rounds[baseline]![i]!.median));
    const trials: Record<string, ThroughputTrial[]> = {};
    for (let trial = 0; trial < TRIALS; trial++) {
      for (const [name, origin] of Object.entries(targets)) {
        const measured = await throughput(`${origin}${path_}`, luaScript(name), {
          proxy: proxyPids[name]!,
          worker: workerPid,
        });
        (trials[name] ??= []).push(measured);
      }
    }
    // gRPC throughput: no wrk for gRPC, so a Node.js generator (32 calls in flight) loads
    // gRPC and, for comparison, HTTP JSON through the router and to the worker, interleaved.
    const nodeTargets: Record<string, () => Sender> = {
      direct: () => jsonHttpSender(worker, path_, extraHeaders('direct')),
      modeldock: () => jsonHttpSender(router.url, path_),
      direct_grpc: () => grpcSender(workerAddress, 'r1', pixels, secretMetadata),
      modeldock_grpc: () => grpcSender(`127.0.0.1:${grpcPort}`, 'r1', pixels),
    };
    const nodeTrials: Record<string, number[]> = {};
    for (let trial = 0; trial < TRIALS; trial++) {
      for (const [name, make] of Object.entries(nodeTargets)) {
        const sender = make();
        const rps = await closedLoopThroughput(sender, CONCURRENCY, THROUGHPUT_SECONDS).finally(() =>
          sender.close(),
        );
        (nodeTrials[name] ??= []).push(Math.round(rps));
      }
    }
    const tput = Object.fromEntries(
      Object.entries(trials).map(([name, runs]) => [name, median(runs.map((r) => r.rps))]),
    );
    const cpu = Object.fromEntries(
      Object.entries(trials).map(([name, runs]) => [
        name,
        {
          proxy: name === 'direct' ? null : median(runs.map((r) => r.proxy_cpu_us_per_request!)),
          worker: median(runs.map((r) => r.worker_cpu_us_per_request)),
        },
      ]),
    );

    const overhead: Record<string, ReturnType<typeof summarize>> = {
      nginx: added('nginx'),
      lean: added('lean'),
      modeldock: added('modeldock'),
      modeldock_grpc: added('modeldock_grpc', 'direct_grpc'),
      modeldock_grpc_over_binary_http: added('modeldock_grpc', 'direct_binary'),
      lean_grpc_translate: added('lean_grpc_translate', 'direct_grpc'),
      lean_grpc_forward: added('lean_grpc_forward', 'direct_grpc'),
      direct_grpc_over_binary_http: added('direct_grpc', 'direct_binary'),
    };
    // The sequential rounds' CPU per call (each round includes its 300 warm-up calls).
    const cpuSequential = Object.fromEntries(
      Object.entries(sequentialCpu).map(([name, list]) => [name, Math.round(median(list.slice(1)))]),
    );
    const result = {
      machine: machine(),
      request: 'POST /v2/models/{job}/infer, one 64-pixel FP32 digit, output label',
      load_generator: `latency: undici, sequential, ${LATENCY_REQUESTS} requests per round, ${TRIALS} rounds interleaved after a warm-up round; throughput: wrk -t1 -c${CONCURRENCY}, ${THROUGHPUT_SECONDS} s after a 1 s warm-up, ${TRIALS} trials interleaved`,
      latency_c1: lat,
      latency_c1_rounds: rounds,
      overhead_p50_ms: overhead,
      throughput_c32_rps: tput,
      throughput_c32: Object.fromEntries(
        Object.entries(trials).map(([name, runs]) => [name, summarize(runs.map((r) => r.rps))]),
      ),
      throughput_trials: trials,
      throughput_c32_node_generator: Object.fromEntries(
        Object.entries(nodeTrials).map(([name, runs]) => [name, summarize(runs)]),
      ),
      cpu_us_per_request: cpu,
      cpu_us_per_call_sequential: cpuSequential,
      throughput_ratio_modeldock_to_nginx: tput.modeldock! / tput.nginx!,
      throughput_ratio_lean_to_nginx: tput.lean! / tput.nginx!,
      throughput_ratio_modeldock_to_lean: tput.modeldock! / tput.lean!,
    };
    const file = writeResult('routing', result);
    console.log(
      table(
        [
          'path',
          'p50 (c=1)',
          'p99 (c=1)',
          'added at p50',
          `throughput (c=${CONCURRENCY})`,
          'proxy CPU per request',
          'worker CPU per request',
        ],
        Object.keys(targets).map((name) => [
          name,
          ms(lat[name]!.median),
          ms(lat[name]!.p99),
          name === 'direct'
            ? '—'
            : `${ms(overhead[name]!.median)} (${ms(overhead[name]!.min)}-${ms(overhead[name]!.max)})`,
          `${Math.round(tput[name]!)} req/s ± ${Math.round(result.throughput_c32[name]!.iqr)}`,
          cpu[name]!.proxy === null ? '—' : `${cpu[name]!.proxy} µs`,
          `${cpu[name]!.worker} µs`,
        ]),
      ),
    );
    console.log(
      '\n' +
        table(
          ['gRPC', 'p50 (c=1)', 'p99 (c=1)', 'added at p50 over worker gRPC', 'CPU per call (c=1)'],
          Object.entries({
            direct_grpc: 'worker directly, gRPC',
            direct_binary: 'worker directly, HTTP binary tensors',
            modeldock_grpc: 'modeldock gRPC',
            lean_grpc_translate: 'lean: gRPC → worker HTTP',
            lean_grpc_forward: 'lean: gRPC → worker gRPC',
          }).map(([name, label]) => [
            label,
            ms(lat[name]!.median),
            ms(lat[name]!.p99),
            name.startsWith('direct')
              ? '—'
              : `${ms(overhead[name]!.median)} (${ms(overhead[name]!.min)}-${ms(overhead[name]!.max)})`,
            cpuSequential[name] === undefined ? '—' : `${cpuSequential[name]} µs`,
          ]),
        ),
    );
    console.log(
      '\n' +
        table(
          ['Node.js generator, c=32', 'throughput'],
          Object.entries(result.throughput_c32_node_generator).map(([name, s]) => [
            name,
            `${Math.round(s.median)} req/s ± ${Math.round(s.iqr)}`,
          ]),
        ),
    );
    console.log(
      `\ngRPC through modeldock adds ${ms(overhead.modeldock_grpc!.median)} at p50 over the worker's own gRPC (target ≤ 0.3 ms), ${ms(overhead.modeldock_grpc_over_binary_http!.median)} over the worker's HTTP binary (the worker's gRPC itself costs ${ms(overhead.direct_grpc_over_binary_http!.median)} more than its HTTP binary); router CPU per sequential call: gRPC ${cpuSequential.modeldock_grpc} µs, HTTP ${cpuSequential.modeldock} µs`,
    );
    console.log(
      `\nthroughput: modeldock / nginx ${ratio(tput.modeldock!, tput.nginx!)}, lean Node.js proxy / nginx ${ratio(tput.lean!, tput.nginx!)}, modeldock / lean ${ratio(tput.modeldock!, tput.lean!)}`,
    );
    console.log(
      `machine busy during throughput runs: ${Object.entries(trials)
        .map(([name, runs]) => `${name} ${Math.round(median(runs.map((r) => r.machine_busy)) * 100)}%`)
        .join(', ')}`,
    );
    console.log(`raw results: ${file}`);
    console.log(`charts: ${(await writeRoutingCharts(result)).join(', ')}`);
  } finally {
    nginx?.child.kill('SIGTERM');
    lean?.child.kill('SIGTERM');
    for (const { child } of leanGrpc) child.kill('SIGTERM');
    await router.kill('SIGTERM');
    await removeInstanceContainers(new Dockerode(), instance);
    if (nginx) await rm(nginx.dir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
