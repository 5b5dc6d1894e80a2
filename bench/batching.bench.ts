/**
 * Dynamic batching (issue #22): throughput and latency (p50, p99) of one-sample requests
 * at concurrency 1, 4, 16 and 64, with the worker's batcher off, with a fixed queue delay,
 * with the adaptive delay (same bound), and with no delay (the default), on m-131 and on a
 * weight-bound model (one 2048×2048 FP32 MatMul: 16 MiB of weights read per call whatever
 * the batch, generated at bench time by python3-onnx as the tests' big models are), both
 * through the router and straight to the worker. Each mode is its own job (the same model
 * file with its own model.json), so every worker container runs under the same limits
 * (1 CPU); modes alternate within each cell, BENCH_TRIALS times.
 *
 *   node --import tsx bench/batching.bench.ts
 *   (BENCH_SECONDS per measurement, default 2.5; BENCH_TRIALS, default 2)
 *
 * Then perf_analyzer through the router at concurrency 16, batching off against adaptive.
 * Results in bench/results/batching.json, charts in bench/results/batching-<model>.svg.
 */
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Pool, type Dispatcher } from 'undici';
import { DIGITS } from '../test/helpers/fixtures.js';
import { TEST_MODELS_DIR, ensureBigModel } from '../test/helpers/models.js';
import { MODELS_DIR } from '../test/helpers/paths.js';
import { getJson, postJson, startTestRouter } from '../test/helpers/router.js';
import { execFileSync } from 'node:child_process';
import { writeBatchingCharts } from './lib/bench-charts.js';
import { perfAnalyzer, type PaRow } from './lib/perf-analyzer.js';
import { machine, summarize, table, writeResult, type Summary } from './lib/stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2.5);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 2);
const CONCURRENCY = [1, 4, 16, 64];
const DELAY_US = 2000;
const PA_CONCURRENCY = 16;

const MODES = {
  off: { dynamic_batching: false },
  fixed: { dynamic_batching: { max_queue_delay_microseconds: DELAY_US, adaptive_delay: false } },
  adaptive: { dynamic_batching: { max_queue_delay_microseconds: DELAY_US } },
  no_delay: {},
} as const;
type Mode = keyof typeof MODES;

interface ModelCase {
  key: 'm-131' | 'matmul-2048';
  source: string;
  input: string;
  width: number;
}

interface Cell {
  model: string;
  path: 'router' | 'worker';
  concurrency: number;
  mode: Mode;
  trials: { rps: number; latency: Summary }[];
  rps: number;
  p50_ms: number;
  p99_ms: number;
}

/** A binary-extension request of one sample (distinct values per client, the bytes after the JSON). */
function requestBody(c: ModelCase, i: number): { header: number; body: Buffer } {
  const values =
    c.key === 'm-131'
      ? DIGITS[i % DIGITS.length]!.inputs.pixels
      : Array.from({ length: c.width }, (_, j) => ((i + j) % 7) / 7);
  const json = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: c.input,
          shape: [1, c.width],
          datatype: 'FP32',
          parameters: { binary_data_size: c.width * 4 },
        },
      ],
      parameters: { binary_data_output: true },
    }),
  );
  return { header: json.length, body: Buffer.concat([json, Buffer.from(Float32Array.from(values).buffer)]) };
}

/** Closed loop: `concurrency` clients each sending its next request when the last is answered. */
async function measure(
  pool: Dispatcher,
  urlPath: string,
  c: ModelCase,
  concurrency: number,
): Promise<{ rps: number; latency: Summary }> {
  const bodies = Array.from({ length: concurrency }, (_, i) => requestBody(c, i));
  const run = async (ms: number, samples?: number[]) => {
    let done = 0;
    const until = performance.now() + ms;
    await Promise.all(
      bodies.map(async ({ header, body }) => {
        while (performance.now() < until) {
          const started = performance.now();
          const response = await pool.request({
            method: 'POST',
            path: urlPath,
            headers: {
              'content-type': 'application/octet-stream',
              'inference-header-content-length': String(header),
            },
            body,
          });
          await response.body.arrayBuffer();
          if (response.statusCode !== 200) throw new Error(`${urlPath}: status ${response.statusCode}`);
          samples?.push(performance.now() - started);
          done++;
        }
      }),
    );
    return done;
  };
  await run(500);
  const samples: number[] = [];
  const started = performance.now();
  const done = await run(SECONDS * 1000, samples);
  return { rps: done / ((performance.now() - started) / 1000), latency: summarize(samples) };
}

const median = (values: number[]) => summarize(values).median;

async function main(): Promise<void> {
  const big = await ensureBigModel(16); // √(16 MiB / 4 B) = 2048: one 2048×2048 MatMul
  const models: ModelCase[] = [
    { key: 'm-131', source: path.join(MODELS_DIR, 'm-131/model.onnx'), input: 'pixels', width: 64 },
    { key: 'matmul-2048', source: path.join(TEST_MODELS_DIR, big, 'model.onnx'), input: 'x', width: 2048 },
  ];
  const store = await mkdtemp(path.join(os.tmpdir(), 'modeldock-batching-bench-'));
  await chmod(store, 0o755); // the workers (uid 10001) read it
  const jobs: Record<string, string> = {};
  for (const model of models) {
    for (const [mode, json] of Object.entries(MODES)) {
      const id = `${model.key}-${mode}`.replace('_', '-');
      await mkdir(path.join(store, id));
      await copyFile(model.source, path.join(store, id, 'model.onnx'));
      await writeFile(path.join(store, id, 'model.json'), JSON.stringify(json));
      jobs[`${model.key}/${mode}`] = id;
    }
  }
  const t = await startTestRouter({
    env: { MODELDOCK_MODELS_DIR: store, MODELDOCK_WORKER_CPUS: '1' },
  });
  const cells: Cell[] = [];
  const paRuns: { model: string; mode: Mode; concurrency: number; result: PaRow | null }[] = [];
  const pools: Dispatcher[] = [];
  try {
    const endpoints: Record<string, string> = {};
    for (const [key, id] of Object.entries(jobs)) {
      const created = await postJson(`${t.url}/v1/jobs`, { job_id: id, model: id, dataset: 'ds-550' });
      if (created.status !== 201) throw new Error(`job ${id}: ${JSON.stringify(created.body)}`);
      endpoints[key] = (await getJson(`${t.url}/v1/jobs/${id}`)).body.server.endpoint;
    }
    const routerPool = new Pool(t.url, { connections: 64 });
    pools.push(routerPool);
    for (const model of models) {
      for (const via of ['worker', 'router'] as const) {
        for (const concurrency of CONCURRENCY) {
          const results: Record<string, { rps: number; latency: Summary }[]> = {};
          for (let trial = 0; trial < TRIALS; trial++) {
            const order = (Object.keys(MODES) as Mode[]).slice();
            if (trial % 2 === 1) order.reverse();
            for (const mode of order) {
              const id = jobs[`${model.key}/${mode}`]!;
              // Straight to the worker through the router's own pool: it carries the worker's secret.
              const pool =
                via === 'router' ? routerPool : t.router.workers.pool(endpoints[`${model.key}/${mode}`]!);
              (results[mode] ??= []).push(await measure(pool, `/v2/models/${id}/infer`, model, concurrency));
            }
          }
          for (const mode of Object.keys(MODES) as Mode[]) {
            const trials = results[mode]!;
            cells.push({
              model: model.key,
              path: via,
              concurrency,
              mode,
              trials,
              rps: Math.round(median(trials.map((r) => r.rps))),
              p50_ms: median(trials.map((r) => r.latency.median)),
              p99_ms: median(trials.map((r) => r.latency.p99)),
            });
          }
          const row = cells.slice(-4);
          console.log(
            `${model.key} via ${via}, concurrency ${concurrency}: ` +
              row.map((c) => `${c.mode} ${c.rps}/s p50 ${c.p50_ms} p99 ${c.p99_ms}`).join(' | '),
          );
        }
      }
    }
    // perf_analyzer (Triton's own load generator) through the router: it reads each job's
    // configuration (max_batch_size 64, dims without the batch dimension) and sends batches of 1.
    const binary = execFileSync('bash', [path.join(import.meta.dirname, '../scripts/perf-analyzer.sh')], {
      encoding: 'utf8',
    }).trim();
    for (const model of models) {
      for (const mode of ['off', 'adaptive'] as const) {
        const csv = path.join(store, `pa-${model.key}-${mode}.csv`);
        const target = {
          url: new URL(t.url).host,
          protocol: 'http' as const,
          model: jobs[`${model.key}/${mode}`]!,
        };
        const result = (await perfAnalyzer(binary, target, PA_CONCURRENCY, csv, 3000)) ?? null;
        paRuns.push({ model: model.key, mode, concurrency: PA_CONCURRENCY, result });
        console.log(`perf_analyzer ${model.key} ${mode} c=${PA_CONCURRENCY}: ${JSON.stringify(result)}`);
      }
    }
  } finally {
    await Promise.all(pools.map((p) => p.close()));
    await t.cleanup();
    await rm(store, { recursive: true, force: true });
  }

  const find = (model: string, via: string, concurrency: number, mode: Mode) =>
    cells.find(
      (c) => c.model === model && c.path === via && c.concurrency === concurrency && c.mode === mode,
    )!;
  const targets = (['worker', 'router'] as const).map((via) => {
    const off16 = find('matmul-2048', via, 16, 'off');
    const adaptive16 = find('matmul-2048', via, 16, 'adaptive');
    const off1 = find('matmul-2048', via, 1, 'off');
    const adaptive1 = find('matmul-2048', via, 1, 'adaptive');
    const m131off1 = find('m-131', via, 1, 'off');
    const m131adaptive1 = find('m-131', via, 1, 'adaptive');
    return {
      path: via,
      weight_bound_c16_throughput_ratio: adaptive16.rps / off16.rps,
      weight_bound_c16_p99_ratio: adaptive16.p99_ms / off16.p99_ms,
      weight_bound_c1_p50_ratio: adaptive1.p50_ms / off1.p50_ms,
      m131_c1_p50_ratio: m131adaptive1.p50_ms / m131off1.p50_ms,
      adaptive_vs_fixed_c1_p50_ratio: adaptive1.p50_ms / find('matmul-2048', via, 1, 'fixed').p50_ms,
    };
  });
  const result = {
    machine: machine(),
    setup: `one worker container per mode, as the router starts them (MODELDOCK_WORKER_CPUS 1, ONNX Runtime's default threads), closed-loop clients sending one sample each (binary tensor extension), ${SECONDS} s per measurement after 0.5 s of warm-up, ${TRIALS} trials with the modes alternating, medians; fixed and adaptive share max_queue_delay_microseconds ${DELAY_US}; no_delay is the default (batching on, no delay)`,
    modes: MODES,
    cells,
    targets,
    perf_analyzer: paRuns,
  };
  const file = writeResult('batching', result);
  console.log(`\n${file}`);
  for (const model of models) {
    for (const via of ['worker', 'router']) {
      console.log(`\n${model.key}, ${via === 'router' ? 'through the router' : 'straight to the worker'}\n`);
      console.log(
        table(
          ['concurrency', ...(Object.keys(MODES) as Mode[]).map((m) => `${m} req/s (p50 / p99 ms)`)],
          CONCURRENCY.map((c) => [
            c,
            ...(Object.keys(MODES) as Mode[]).map((m) => {
              const cell = find(model.key, via, c, m);
              return `${cell.rps} (${cell.p50_ms} / ${cell.p99_ms})`;
            }),
          ]),
        ),
      );
    }
  }
  console.log('\ntargets', JSON.stringify(targets, null, 2));
  console.log((await writeBatchingCharts(result)).join('\n'));
}

await main();
