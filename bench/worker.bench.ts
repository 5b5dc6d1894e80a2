/**
 * The worker against its floor, ONNX Runtime called in-process on the same machine in
 * the same run: model load time, and inference throughput (one-sample requests at
 * concurrency 1 and 8, JSON and binary tensors; ds-550 whole through /batch for m-131),
 * for m-131 and a generated 256 MiB model.
 *
 *   node --import tsx bench/worker.bench.ts
 *   (BENCH_TRIALS: loads of big models, default 7; BENCH_REQUESTS: 1000; BENCH_CONCURRENCY: 8)
 */
import Dockerode from 'dockerode';
import ort from 'onnxruntime-node';
import { statSync } from 'node:fs';
import path from 'node:path';
import { WorkerClient } from '../src/runtime/worker-client.js';
import { DIGITS } from '../test/helpers/fixtures.js';
import { TEST_MODELS_DIR, ensureBigModel } from '../test/helpers/models.js';
import { DATASETS_DIR, MODELS_DIR } from '../test/helpers/paths.js';
import { machine, ms, ratio, summarize, table, writeResult } from './lib/stats.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 7);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const docker = new Dockerode();
const workers = new WorkerClient();
const MiB = 1024 * 1024;

interface Case {
  label: string;
  modelsDir: string;
  modelId: string;
  input: string;
  width: number;
  sample: (i: number) => number[];
  /** A labelled dataset matching the model, for the batch measurement. */
  dataset?: string;
}

async function startWorker(modelsDir: string) {
  const container = await docker.createContainer({
    Image: 'modeldock/worker:latest',
    Labels: { 'modeldock.bench': 'worker' },
    User: '10001:10001',
    ExposedPorts: { '8000/tcp': {} },
    Env: ['MODELDOCK_WORKER_THREADS=1'],
    HostConfig: {
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': '' },
      CapDrop: ['ALL'],
      Memory: 2048 * MiB,
      NanoCpus: 1e9,
      Mounts: [
        { Type: 'bind', Source: modelsDir, Target: '/models', ReadOnly: true },
        { Type: 'bind', Source: DATASETS_DIR, Target: '/datasets', ReadOnly: true },
      ],
      PortBindings: { '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  await container.start();
  const port = (await container.inspect()).NetworkSettings.Ports['8000/tcp']![0]!.HostPort;
  const endpoint = `http://127.0.0.1:${port}`;
  await workers.waitUntilReady(endpoint, { timeoutMs: 60_000 });
  return { container, endpoint };
}

/**
 * Loads of a small model take about a millisecond, so a few of them measure mostly the
 * noise of a shared machine: small models are loaded 51 times, big ones TRIALS times.
 */
function loadTrials(c: Case): number {
  return statSync(path.join(c.modelsDir, c.modelId, 'model.onnx')).size < 16 * MiB
    ? Math.max(TRIALS, 51)
    : TRIALS;
}

/**
 * One sample with the binary tensor extension: the input as raw FP32 bytes after the
 * JSON header, every output asked back as bytes.
 */
async function inferBinary(endpoint: string, c: Case, i: number): Promise<void> {
  const values = Float32Array.from(c.sample(i));
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: c.input,
          shape: [1, c.width],
          datatype: 'FP32',
          parameters: { binary_data_size: values.byteLength },
        },
      ],
      parameters: { binary_data_output: true },
    }),
  );
  const response = await workers.pool(endpoint).request({
    method: 'POST',
    path: '/v2/models/bench/infer',
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
    body: Buffer.concat([header, Buffer.from(values.buffer)]),
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  if (response.statusCode !== 200) throw new Error(`binary infer: ${response.statusCode} ${body.toString()}`);
  JSON.parse(body.subarray(0, Number(response.headers['inference-header-content-length'])).toString());
}

/** Requests per second for `total` calls of `call`, `concurrency` of them in flight. */
async function throughput(concurrency: number, total: number, call: (i: number) => Promise<void>) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await call(next++);
    }),
  );
  return (total * 1000) / (performance.now() - started);
}

async function measureCase(c: Case) {
  const file = path.join(c.modelsDir, c.modelId, 'model.onnx');
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  };
  // Floor: ONNX Runtime in this process.
  const floorLoads: number[] = [];
  let session: ort.InferenceSession | undefined;
  for (let i = 0; i < loadTrials(c); i++) {
    await session?.release();
    const started = performance.now();
    session = await ort.InferenceSession.create(file, options);
    floorLoads.push(performance.now() - started);
  }
  const floorInfer: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const data = Float32Array.from(c.sample(i));
    const started = performance.now();
    await session!.run({ [c.input]: new ort.Tensor('float32', data, [1, c.width]) });
    floorInfer.push(performance.now() - started);
  }
  const floorConcurrent = await throughput(CONCURRENCY, REQUESTS, async (i) => {
    await session!.run({
      [c.input]: new ort.Tensor('float32', Float32Array.from(c.sample(i)), [1, c.width]),
    });
  });
  await session!.release();

  // The worker in its container, through its HTTP API.
  const { container, endpoint } = await startWorker(c.modelsDir);
  const workerLoads: number[] = [];
  const workerInfer: number[] = [];
  const workerBinary: number[] = [];
  let workerConcurrent = 0;
  try {
    for (let i = 0; i < loadTrials(c); i++) {
      await workers.unload(endpoint, 'bench');
      const started = performance.now();
      await workers.load(endpoint, 'bench', c.modelId);
      workerLoads.push(performance.now() - started);
    }
    for (let i = 0; i < REQUESTS; i++) {
      const body = { inputs: [{ name: c.input, shape: [1, c.width], datatype: 'FP32', data: c.sample(i) }] };
      const started = performance.now();
      await workers.infer(endpoint, 'bench', body);
      workerInfer.push(performance.now() - started);
    }
    for (let i = 0; i < REQUESTS; i++) {
      const started = performance.now();
      await inferBinary(endpoint, c, i);
      workerBinary.push(performance.now() - started);
    }
    workerConcurrent = await throughput(CONCURRENCY, REQUESTS, async (i) => {
      await workers.infer(endpoint, 'bench', {
        inputs: [{ name: c.input, shape: [1, c.width], datatype: 'FP32', data: c.sample(i) }],
      });
    });
  } finally {
    await container.remove({ force: true });
    await workers.forget(endpoint);
  }
  const load = { floor: summarize(floorLoads), worker: summarize(workerLoads) };
  const batch = c.dataset ? await measureBatch(c, file, options) : undefined;
  const infer = {
    floor: summarize(floorInfer),
    worker: summarize(workerInfer),
    worker_binary: summarize(workerBinary),
  };
  return {
    model: c.label,
    load,
    infer,
    infer_per_s: { floor: 1000 / infer.floor.median, worker: 1000 / infer.worker.median },
    infer_concurrent_per_s: { concurrency: CONCURRENCY, floor: floorConcurrent, worker: workerConcurrent },
    ...(batch ? { batch } : {}),
  };
}

/**
 * A whole labelled dataset (what TEMP runs): the worker's POST /v2/models/{name}/batch
 * (read and parse records.jsonl, batches of 256, arg-max and accuracy) vs one in-process
 * session.run over the same samples already in a Float32Array.
 */
async function measureBatch(
  c: Case,
  file: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<{ samples: number; floor: ReturnType<typeof summarize>; worker: ReturnType<typeof summarize> }> {
  const samples = DIGITS.length;
  const session = await ort.InferenceSession.create(file, options);
  const data = Float32Array.from(DIGITS.flatMap((r) => r.inputs.pixels));
  const floor: number[] = [];
  for (let i = 0; i < TRIALS * 3; i++) {
    const started = performance.now();
    await session.run({ [c.input]: new ort.Tensor('float32', data, [samples, c.width]) });
    floor.push(performance.now() - started);
  }
  await session.release();
  const { container, endpoint } = await startWorker(c.modelsDir);
  const worker: number[] = [];
  try {
    await workers.load(endpoint, 'bench', c.modelId);
    for (let i = 0; i < TRIALS * 3; i++) {
      const started = performance.now();
      const result = await workers.batch(endpoint, 'bench', c.dataset!);
      worker.push(performance.now() - started);
      if (result.count !== samples) throw new Error(`batch answered ${result.count} predictions`);
    }
  } finally {
    await container.remove({ force: true });
    await workers.forget(endpoint);
  }
  return { samples, floor: summarize(floor), worker: summarize(worker) };
}

async function main() {
  const big = await ensureBigModel(256);
  const bigWidth = Math.round(Math.sqrt((256 * MiB) / 4));
  const cases: Case[] = [
    {
      label: 'm-131 (10 KB)',
      modelsDir: MODELS_DIR,
      modelId: 'm-131',
      input: 'pixels',
      width: 64,
      sample: (i) => DIGITS[i % DIGITS.length]!.inputs.pixels,
      dataset: 'ds-550',
    },
    {
      label: `${big} (256 MiB)`,
      modelsDir: TEST_MODELS_DIR,
      modelId: big,
      input: 'x',
      width: bigWidth,
      sample: (i) => Array.from({ length: bigWidth }, (_, k) => ((i + k) % 17) / 17),
    },
  ];
  const results = [];
  for (const c of cases) results.push(await measureCase(c));
  await workers.close();
  const file = writeResult('worker', { machine: machine(), trials: TRIALS, requests: REQUESTS, results });
  console.log(
    table(
      [
        'model',
        'load: in-process ORT',
        'load: worker',
        'ratio',
        'infer c=1: in-process',
        'infer c=1: worker',
        'ratio',
        'infer c=1: worker, binary',
        'ratio',
      ],
      results.map((r) => [
        r.model,
        ms(r.load.floor.median),
        ms(r.load.worker.median),
        ratio(r.load.worker.median, r.load.floor.median),
        `${ms(r.infer.floor.median)} (${Math.round(r.infer_per_s.floor)}/s)`,
        `${ms(r.infer.worker.median)} (${Math.round(r.infer_per_s.worker)}/s)`,
        ratio(r.infer.worker.median, r.infer.floor.median),
        `${ms(r.infer.worker_binary.median)} (${Math.round(1000 / r.infer.worker_binary.median)}/s)`,
        ratio(r.infer.worker_binary.median, r.infer.floor.median),
      ]),
    ),
  );
  for (const r of results) {
    const concurrent = r.infer_concurrent_per_s;
    console.log(
      `\n${r.model}, ${REQUESTS} one-sample requests, ${CONCURRENCY} in flight: in-process ${Math.round(concurrent.floor)}/s, ` +
        `worker ${Math.round(concurrent.worker)}/s (${ratio(concurrent.floor, concurrent.worker)} fewer)`,
    );
  }
  for (const r of results) {
    if (!r.batch) continue;
    const perSecond = (s: { median: number }) => Math.round((r.batch!.samples * 1000) / s.median);
    console.log(
      `\n${r.model}, ds-550 whole (${r.batch.samples} samples): in-process ${ms(r.batch.floor.median)} (${perSecond(r.batch.floor)} samples/s), ` +
        `worker /batch ${ms(r.batch.worker.median)} (${perSecond(r.batch.worker)} samples/s), ${ratio(r.batch.worker.median, r.batch.floor.median)}`,
    );
  }
  console.log(`\nraw results: ${file}`);
}

await main();
