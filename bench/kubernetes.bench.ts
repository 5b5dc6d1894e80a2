/**
 * Lifecycle operations through modeldock on Kubernetes against the cluster doing the same
 * work with the same Pod spec, in one run (the floor), on the test cluster
 * scripts/kubernetes.sh runs here:
 *   DEPLOY_CREATE ~ create the Pod (no gate) → running with an IP → first healthy HTTP answer → load
 *   TERMINATE     ~ delete the Pod (1 s grace, as modeldock) → gone from the API
 *   TEMP          ~ create → healthy → load → batch over ds-550 → delete → gone
 * and the same through a router with a warm pool of one. Trials interleave floor and
 * router in two phases (DEPLOY_CREATE + TERMINATE, then TEMP), and which side goes first
 * alternates, so drift and the node's clean-up of the previous Pods hit both alike.
 * Medians, IQR, ratios, and each side's TEMP step by step.
 *
 *   node --import tsx bench/kubernetes.bench.ts      (BENCH_TRIALS, default 7)
 */
import type { V1Pod } from '@kubernetes/client-node';
import { workerPod } from '../src/runtime/kubernetes/pod-spec.js';
import { WorkerClient } from '../src/runtime/worker-client.js';
import { WORKER_SECRET_ENV, generateWorkerSecret } from '../src/worker-secret.js';
import {
  TEST_NAMESPACE,
  cluster,
  kubernetesRuntime,
  removeInstancePods,
} from '../test/helpers/kubernetes.js';
import { DATASETS_DIR, MODELS_DIR, WORKER_IMAGE } from '../test/helpers/paths.js';
import { postJson, startTestRouter, uniqueInstance } from '../test/helpers/router.js';
import { TABLES } from './lib/report-tables.js';
import { floorComparisons, machine, summarize, writeResult } from './lib/stats.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 7);
// The floor's workers obey a secret as modeldock's do (the same Pod spec): this one.
const floorSecret = generateWorkerSecret();
const workers = new WorkerClient({ secretOf: () => floorSecret });
const c = await cluster();
const floorInstance = uniqueInstance('kfloor');

type Op = 'DEPLOY_CREATE' | 'TERMINATE' | 'TEMP';
const OPS: Op[] = ['DEPLOY_CREATE', 'TERMINATE', 'TEMP'];

/**
 * Resolves with the first state of the Pod `until` accepts, reading it every 20 ms
 * (finer than the runtime's own 50 ms, so the floor is never the slower for it).
 */
async function waitForPod<T>(name: string, until: (pod: V1Pod | undefined) => T | undefined): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pod = await c.core
      .readNamespacedPod({ name, namespace: TEST_NAMESPACE })
      .catch((error: { code?: number }) => {
        if (error.code === 404) return undefined;
        throw error;
      });
    const value = until(pod);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`pod ${name}: no such state within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function floorPod(name: string): V1Pod {
  const pod = workerPod(
    {
      name,
      labels: {},
      limits: { memoryBytes: 1024 ** 3, nanoCpus: 1e9, pids: 256 },
      env: { [WORKER_SECRET_ENV]: floorSecret },
    },
    {
      namespace: TEST_NAMESPACE,
      instance: floorInstance,
      image: WORKER_IMAGE,
      imagePullPolicy: 'Never',
      store: { type: 'hostPath', modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR },
      requestsRatio: 0.1,
      terminationGraceSeconds: 10,
    },
  );
  delete pod.spec!.schedulingGates;
  return pod;
}

async function rawRunToHealthy(name: string): Promise<string> {
  await c.core.createNamespacedPod({ namespace: TEST_NAMESPACE, body: floorPod(name) });
  const ip = await waitForPod(name, (pod) => {
    const running = pod?.status?.containerStatuses?.[0]?.state?.running;
    return running && pod?.status?.podIP ? pod.status.podIP : undefined;
  });
  const endpoint = `http://${ip}:8000`;
  await workers.waitUntilReady(endpoint, { timeoutMs: 60_000 });
  return endpoint;
}

async function rawDelete(name: string): Promise<void> {
  await c.core.deleteNamespacedPod({ name, namespace: TEST_NAMESPACE, gracePeriodSeconds: 1 });
  await waitForPod(name, (pod) => (pod ? undefined : true));
}

async function timed<T>(work: () => Promise<T>): Promise<[number, T]> {
  const started = performance.now();
  const value = await work();
  return [performance.now() - started, value];
}

/** The floor's DEPLOY_CREATE and TERMINATE: one Pod started, loaded, deleted. */
async function floorCreateTerminate(i: number): Promise<Record<'DEPLOY_CREATE' | 'TERMINATE', number>> {
  const name = `${floorInstance}-${i + 1}`;
  const [runMs, endpoint] = await timed(() => rawRunToHealthy(name));
  const [loadMs] = await timed(() => workers.load(endpoint, 'job', 'm-131'));
  const [terminateMs] = await timed(() => rawDelete(name));
  await workers.forget(endpoint);
  return { DEPLOY_CREATE: runMs + loadMs, TERMINATE: terminateMs };
}

/** The floor's TEMP, with the time of each of its steps (named as modeldock's records name theirs). */
async function floorTemp(i: number): Promise<{ ms: number; steps: Record<string, number> }> {
  const name = `${floorInstance}-${i + 1}-temp`;
  const steps: Record<string, number> = {};
  const step = async <T>(stepName: string, work: () => Promise<T>): Promise<T> => {
    const [elapsed, value] = await timed(work);
    steps[stepName] = elapsed;
    return value;
  };
  const [tempMs] = await timed(async () => {
    await step('create', () =>
      c.core.createNamespacedPod({ namespace: TEST_NAMESPACE, body: floorPod(name) }),
    );
    const ip = await step('start', () =>
      waitForPod(name, (pod) => {
        const running = pod?.status?.containerStatuses?.[0]?.state?.running;
        return running && pod?.status?.podIP ? pod.status.podIP : undefined;
      }),
    );
    const endpoint = `http://${ip}:8000`;
    await step('wait_ready', () => workers.waitUntilReady(endpoint, { timeoutMs: 60_000 }));
    await step('load', () => workers.load(endpoint, 'job', 'm-131'));
    await step('infer', () => workers.batch(endpoint, 'job', 'ds-550'));
    await step('remove', () => rawDelete(name));
    await workers.forget(endpoint);
  });
  return { ms: tempMs, steps };
}

async function main() {
  const runtime = (instance: string) => kubernetesRuntime(c, instance);
  const t = await startTestRouter({
    env: { MODELDOCK_LOG_LEVEL: 'error' },
    runtime: (config) => runtime(config.instance),
  });
  const pooled = await startTestRouter({
    env: { MODELDOCK_LOG_LEVEL: 'error', MODELDOCK_WARM_POOL: '1' },
    runtime: (config) => runtime(config.instance),
  });
  const floor: Record<Op, number[]> = { DEPLOY_CREATE: [], TERMINATE: [], TEMP: [] };
  const router: Record<Op, number[]> = { DEPLOY_CREATE: [], TERMINATE: [], TEMP: [] };
  const pool: Record<'DEPLOY_CREATE' | 'TEMP', number[]> = { DEPLOY_CREATE: [], TEMP: [] };
  const floorTempSteps: Record<string, number[]> = {};
  const modeldockTempSteps: Record<string, number[]> = {};
  const routerOp = async (i: number, op: Op) => {
    const job = { job_id: `kbench${i + 1}`, model: 'm-131', dataset: 'ds-550' };
    await pooled.router.lifecycle.pool.whenFull();
    const [elapsed, response] = await timed(() =>
      postJson(`${t.url}/inference_router/`, { ...job, operation_type: op }),
    );
    if (response.status !== 200) throw new Error(`${op}: ${JSON.stringify(response.body)}`);
    if (i < 0) return;
    router[op].push(elapsed);
    if (op !== 'TEMP') return;
    for (const s of response.body.steps as { name: string; duration_ms: number }[])
      (modeldockTempSteps[s.name] ??= []).push(s.duration_ms);
  };
  /** Runs the two sides of a phase one after the other, the floor first in even trials. */
  const inTurn = async (i: number, floorSide: () => Promise<void>, modeldockSide: () => Promise<void>) => {
    const [first, second] = i % 2 === 0 ? [floorSide, modeldockSide] : [modeldockSide, floorSide];
    await first();
    await second();
  };
  try {
    for (let i = -1; i < TRIALS; i++) {
      // Trial -1 warms up each path (not counted). Nothing else starts a Pod meanwhile:
      // the pooled router's refill would share the node with what is measured.
      // Whoever goes first starts its Pod while the kubelet still tears down the Pods
      // deleted just before (gone from the API, not yet from the node): in each phase the
      // order alternates, so that cost falls on the floor and on modeldock alike. TEMP is
      // a phase of its own with its own alternation, so neither side's TEMP always
      // follows the same kind of removal (its own TERMINATE, or the other side's).
      await inTurn(
        i,
        async () => {
          await pooled.router.lifecycle.pool.whenFull();
          const f = await floorCreateTerminate(i);
          if (i < 0) return;
          floor.DEPLOY_CREATE.push(f.DEPLOY_CREATE);
          floor.TERMINATE.push(f.TERMINATE);
        },
        async () => {
          await routerOp(i, 'DEPLOY_CREATE');
          await routerOp(i, 'TERMINATE');
        },
      );
      await inTurn(
        i,
        async () => {
          await pooled.router.lifecycle.pool.whenFull();
          const f = await floorTemp(i);
          if (i < 0) return;
          floor.TEMP.push(f.ms);
          for (const [name, ms] of Object.entries(f.steps)) (floorTempSteps[name] ??= []).push(ms);
        },
        () => routerOp(i, 'TEMP'),
      );
      const job = { job_id: `kbench${i + 1}`, model: 'm-131', dataset: 'ds-550' };
      for (const op of ['DEPLOY_CREATE', 'TEMP'] as const) {
        await pooled.router.lifecycle.pool.whenFull();
        const [elapsed, response] = await timed(() =>
          postJson(`${pooled.url}/inference_router/`, { ...job, operation_type: op }),
        );
        if (response.status !== 200) throw new Error(`pooled ${op}: ${JSON.stringify(response.body)}`);
        if (i >= 0) pool[op].push(elapsed);
      }
      await postJson(`${pooled.url}/inference_router/`, { ...job, operation_type: 'TERMINATE' });
    }
  } finally {
    await t.stop();
    await pooled.stop();
    await removeInstancePods(c, [t.instance, pooled.instance, floorInstance]);
    await t.cleanup();
    await pooled.cleanup();
    await workers.close();
  }

  const result = {
    machine: machine(),
    cluster: 'scripts/kubernetes.sh: single node, Kubernetes v1.34.4, containerd 1.6',
    trials: TRIALS,
    order:
      'DEPLOY_CREATE + TERMINATE, then TEMP, each phase with the floor first in even trials and modeldock first in odd ones',
    ...floorComparisons(OPS, floor, router, pool),
    // Where each side's TEMP spends its time (modeldock's from its operation records).
    temp_steps: {
      floor: Object.fromEntries(Object.entries(floorTempSteps).map(([k, v]) => [k, summarize(v)])),
      modeldock: Object.fromEntries(Object.entries(modeldockTempSteps).map(([k, v]) => [k, summarize(v)])),
    },
  };
  const file = writeResult('kubernetes', result);
  for (const key of ['kubernetes.operations', 'kubernetes.warm_pool', 'kubernetes.temp_steps'])
    console.log(`${TABLES[key]!(result)}\n`);
  console.log(`\nraw results: ${file}`);
}

await main();
