/**
 * The POC's "speed difference inside Docker in Docker" question: each lifecycle
 * operation and a routed inference with the router on the host and with the router in a
 * container (host's Docker socket mounted, workers on its network), in one run,
 * trials interleaved. Both talk to the same engine.
 *
 *   node --import tsx bench/placement.bench.ts      (BENCH_TRIALS, default 7)
 */
import Dockerode from 'dockerode';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureImage } from '../src/runtime/docker/image-builder.js';
import { DATASETS_DIR, MODELS_DIR } from '../test/helpers/paths.js';
import { postJson, removeInstanceContainers, uniqueInstance } from '../test/helpers/router.js';
import { machine, ms, ratio, summarize, table, writeResult } from './lib/stats.js';
import { writePlacementCharts } from './lib/bench-charts.js';
import { DIGITS } from '../test/helpers/fixtures.js';
import { startBenchRouter } from './lib/bench-router.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 7);
const docker = new Dockerode();
const OPS = ['DEPLOY_CREATE', 'DEPLOY_UNLOAD', 'DEPLOY_LOAD', 'INFER', 'TERMINATE', 'TEMP'] as const;
type Op = (typeof OPS)[number];
const record = DIGITS[0]!;

async function containerRouter(network: string, instance: string) {
  const container = await docker.createContainer({
    name: `router-${instance}`,
    Image: 'modeldock/router:latest',
    // No key, as the host router in this comparison has none: the two placements differ
    // only in where the router runs (a router in a container otherwise demands a key).
    Env: [`MODELDOCK_INSTANCE=${instance}`, 'MODELDOCK_LOG_LEVEL=warn', 'MODELDOCK_AUTH=off'],
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: {
      NetworkMode: network,
      Binds: [
        '/var/run/docker.sock:/var/run/docker.sock',
        `${MODELS_DIR}:/models:ro`,
        `${DATASETS_DIR}:/datasets:ro`,
      ],
      PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  await container.start();
  const port = (await container.inspect()).NetworkSettings.Ports['8080/tcp']![0]!.HostPort;
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (
      await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { url, container };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('router container did not come up');
}

async function trial(url: string, jobId: string): Promise<Record<Op, number>> {
  const out = {} as Record<Op, number>;
  const job = { job_id: jobId, model: 'm-131', dataset: 'ds-550' };
  for (const op of OPS) {
    const started = performance.now();
    const response =
      op === 'INFER'
        ? await postJson(`${url}/v2/models/${jobId}/infer`, {
            inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
          })
        : await postJson(`${url}/inference_router/`, { ...job, operation_type: op });
    out[op] = performance.now() - started;
    if (response.status !== 200) throw new Error(`${op}: ${JSON.stringify(response.body)}`);
  }
  return out;
}

async function main() {
  await ensureImage(docker, 'router', 'modeldock/router:latest');
  const network = `bench_net_${process.pid}`;
  await docker.createNetwork({ Name: network, Driver: 'bridge' });
  const hostInstance = uniqueInstance('bhost');
  const boxInstance = uniqueInstance('bbox');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-bench-'));
  const host = await startBenchRouter(
    {
      MODELDOCK_INSTANCE: hostInstance,
      MODELDOCK_STORE: `sqlite:${dataDir}/modeldock.db`,
      MODELDOCK_RUNTIME: 'docker',
      MODELDOCK_LOG_LEVEL: 'warn',
    },
    path.join(dataDir, 'router.log'),
  );
  const box = await containerRouter(network, boxInstance);
  const samples: Record<'host' | 'container', Record<Op, number[]>> = {
    host: Object.fromEntries(OPS.map((o) => [o, []])) as never,
    container: Object.fromEntries(OPS.map((o) => [o, []])) as never,
  };
  try {
    for (let i = -1; i < TRIALS; i++) {
      for (const [where, url] of [
        ['host', host.url],
        ['container', box.url],
      ] as const) {
        const result = await trial(url, `job${i + 1}`);
        if (i >= 0) for (const op of OPS) samples[where][op].push(result[op]);
      }
    }
  } finally {
    await host.kill('SIGTERM');
    await box.container.remove({ force: true });
    await removeInstanceContainers(docker, hostInstance);
    await removeInstanceContainers(docker, boxInstance);
    await docker
      .getNetwork(network)
      .remove()
      .catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
  const rows = OPS.map((op) => ({
    operation: op,
    host: summarize(samples.host[op]),
    container: summarize(samples.container[op]),
  }));
  const result = { machine: machine(), trials: TRIALS, operations: rows };
  const file = writeResult('placement', result);
  console.log(
    table(
      ['operation', 'router on the host', 'router in a container', 'container / host'],
      rows.map((r) => [
        r.operation,
        `${ms(r.host.median)} ± ${ms(r.host.iqr)}`,
        `${ms(r.container.median)} ± ${ms(r.container.iqr)}`,
        ratio(r.container.median, r.host.median),
      ]),
    ),
  );
  console.log(`\nraw results: ${file}`);
  console.log(`charts: ${(await writePlacementCharts(result)).join(', ')}`);
}

await main();
