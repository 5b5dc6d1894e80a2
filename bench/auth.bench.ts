/**
 * What asking for a key costs on the inference hot path: the router's CPU per routed
 * request with auth on (one infer key, `Authorization: Bearer` on every request) against
 * auth off, in the same run, rounds interleaved.
 *
 * The router is the real hot path (bench/lib/hot-path-router.ts) in its own process; the
 * worker is a minimal HTTP server answering a fixed inference result in another process,
 * and the client a third (this one), so the router's CPU counter holds the router's work
 * only. Budget (issue #12): at most 5 µs added per request.
 *
 *   node --import tsx bench/auth.bench.ts     (BENCH_REQUESTS: 20000 per round; BENCH_ROUNDS: 7)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Pool } from 'undici';
import { KeyRing } from '../src/api/auth.js';
import { machine, summarize, table, writeResult } from './lib/stats.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const CONCURRENCY = 8;
const KEY = 'bench-infer-key-0123456789abcdef0123456789';
const BODY = JSON.stringify({
  inputs: [
    { name: 'pixels', shape: [1, 64], datatype: 'FP32', data: Array.from({ length: 64 }, (_, i) => i % 16) },
  ],
});
const ANSWER = JSON.stringify({
  model_name: 'b1',
  outputs: [{ name: 'label', shape: [1], datatype: 'INT64', data: [3] }],
});

/** A worker stand-in in a child process: answers every inference with the same small result. */
function startWorker(): Promise<{ child: ChildProcess; url: string }> {
  const script = `
    const http = require('node:http');
    const answer = ${JSON.stringify(ANSWER)};
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) }).end(answer));
    });
    server.keepAliveTimeout = 72000;
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  return portOf(spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }));
}

function startRouter(workerUrl: string, key: string | undefined) {
  const script = path.join(import.meta.dirname, 'lib', 'hot-path-router.ts');
  return portOf(
    spawn(process.execPath, ['--import', 'tsx', script, workerUrl, ...(key ? [key] : [])], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
}

function portOf(child: ChildProcess): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (data: Buffer) =>
      resolve({ child, url: `http://127.0.0.1:${String(data).trim()}` }),
    );
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
}

async function cpuOf(url: string): Promise<number> {
  return ((await (await fetch(`${url}/cpu`)).json()) as { cpu_us: number }).cpu_us;
}

/** Sends `count` requests at CONCURRENCY over keep-alive; every answer must be 200. */
async function load(pool: Pool, count: number, headers: Record<string, string>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next++ < count) {
      const { statusCode, body } = await pool.request({
        method: 'POST',
        path: '/v2/models/b1/infer',
        headers: { 'content-type': 'application/json', ...headers },
        body: BODY,
      });
      await body.text();
      if (statusCode !== 200) throw new Error(`answer ${statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
}

/**
 * The one thing auth adds to the hot path, timed alone in this process: CPU per
 * `authorize` call with the right key among 1 and among 10 keys (every key is compared).
 */
function checkAlone() {
  const time = (ring: KeyRing) => {
    const header = `Bearer ${KEY}`;
    const calls = 200_000;
    const rounds: number[] = [];
    for (let round = 0; round < 7; round++) {
      const before = process.cpuUsage();
      for (let i = 0; i < calls; i++) if (!ring.authorize(header, 'infer').ok) throw new Error('refused');
      const used = process.cpuUsage(before);
      rounds.push((used.user + used.system) / calls);
    }
    return summarize(rounds.slice(1));
  };
  const others = Array.from({ length: 9 }, (_, i) => `other-infer-key-${i}-0123456789abcdef`);
  return {
    one_key: time(new KeyRing({ admin: [], infer: [KEY] })),
    ten_keys: time(new KeyRing({ admin: others.slice(0, 4), infer: [...others.slice(4), KEY] })),
  };
}

async function main(): Promise<void> {
  const worker = await startWorker();
  const variants: { name: string; key: string | undefined; headers: Record<string, string> }[] = [
    { name: 'auth off', key: undefined, headers: {} },
    { name: 'auth on', key: KEY, headers: { authorization: `Bearer ${KEY}` } },
  ];
  const routers = await Promise.all(variants.map((v) => startRouter(worker.url, v.key)));
  const pools = routers.map((r) => new Pool(r.url, { connections: CONCURRENCY, pipelining: 1 }));
  const perRequest: number[][] = variants.map(() => []);
  try {
    // Warm-up: JIT, connection pools.
    for (let i = 0; i < variants.length; i++) await load(pools[i]!, 2_000, variants[i]!.headers);
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < variants.length; i++) {
        const before = await cpuOf(routers[i]!.url);
        await load(pools[i]!, REQUESTS, variants[i]!.headers);
        const after = await cpuOf(routers[i]!.url);
        perRequest[i]!.push((after - before) / REQUESTS);
      }
    }
  } finally {
    await Promise.all(pools.map((p) => p.close()));
    for (const r of [...routers, worker]) r.child.kill();
  }
  const summaries = perRequest.map((values) => summarize(values));
  const check = checkAlone();
  const added = perRequest[1]!.map((on, round) => on - perRequest[0]![round]!);
  const addedSummary = summarize(added);
  const result = {
    machine: machine(),
    requests_per_round: REQUESTS,
    rounds: ROUNDS,
    concurrency: CONCURRENCY,
    cpu_us_per_request: Object.fromEntries(variants.map((v, i) => [v.name, summaries[i]])),
    added_us_per_request: addedSummary,
    budget_us: 5,
    check_alone_us: check,
  };
  writeResult('auth', result);
  console.log(
    table(
      ['router CPU per routed request', 'median', 'range over rounds'],
      [
        ...variants.map((v, i) => [
          v.name,
          `${summaries[i]!.median.toFixed(2)} µs`,
          `${summaries[i]!.min.toFixed(2)}–${summaries[i]!.max.toFixed(2)} µs`,
        ]),
        [
          'the check alone (KeyRing.authorize; 1 key / 10 keys)',
          `${check.one_key.median.toFixed(2)} / ${check.ten_keys.median.toFixed(2)} µs`,
          '',
        ],
        [
          'added by auth (round by round)',
          `${addedSummary.median.toFixed(2)} µs`,
          `${addedSummary.min.toFixed(2)}–${addedSummary.max.toFixed(2)} µs`,
        ],
      ],
    ),
  );
}

await main();
