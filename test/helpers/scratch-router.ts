/**
 * A router on the process runtime over a model store and serving-runtime directory of
 * the test's own (in a scratch directory), for tests of the serving-runtime catalog.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProcessRuntime, type WorkerCommand } from '../../src/runtime/process/process-runtime.js';
import { LABELS, type Runtime, type WorkerInfo } from '../../src/runtime/runtime.js';
import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';
import { DATASETS_DIR, MODELS_DIR } from './paths.js';
import { DIGITS } from './fixtures.js';
import { postJson, startTestRouter, uniqueInstance, type TestRouter } from './router.js';

export interface ScratchRouter {
  t: TestRouter;
  instance: string;
  modelsDir: string;
  runtimesDir: string;
  stateDir: string;
  /** Stop the router and start another on its database and state directory (`t` is then the new one). */
  restart(): Promise<TestRouter>;
  /** Stop the router, remove its workers and the scratch directory. */
  cleanup(): Promise<void>;
}

/** `fill` writes the models and runtime entries before the router starts (it reads the catalog once). */
export async function startScratchRouter(
  prefix: string,
  fill: (dirs: { modelsDir: string; runtimesDir: string }) => Promise<void>,
  /** More of the router's configuration (e.g. MODELDOCK_GRPC_PORT). */
  env: Record<string, string> = {},
  /** How workers (and guards) run; default: as the router runs, compiled or from source. */
  workerCommand?: WorkerCommand,
): Promise<ScratchRouter> {
  const instance = uniqueInstance(prefix);
  const scratch = await mkdtemp(path.join(os.tmpdir(), `modeldock-${prefix}-`));
  const modelsDir = path.join(scratch, 'models');
  const runtimesDir = path.join(scratch, 'runtimes');
  const stateDir = path.join(scratch, 'state');
  await mkdir(modelsDir);
  await mkdir(runtimesDir);
  await fill({ modelsDir, runtimesDir });
  const makeRuntime = () =>
    new ProcessRuntime({
      instance,
      stateDir,
      modelsDir,
      datasetsDir: DATASETS_DIR,
      ...(workerCommand ? { workerCommand } : {}),
    });
  const start = (dataDir?: string) =>
    startTestRouter({
      instance,
      runtime: makeRuntime,
      dataDir,
      env: { MODELDOCK_MODELS_DIR: modelsDir, MODELDOCK_RUNTIMES_DIR: runtimesDir, ...env },
    });
  const router: ScratchRouter = {
    t: await start(),
    instance,
    modelsDir,
    runtimesDir,
    stateDir,
    restart: async () => {
      await router.t.stop();
      router.t = await start(router.t.dataDir);
      return router.t;
    },
    cleanup: async () => {
      await router.t.stop();
      const runtime = makeRuntime();
      for (const worker of await runtime.list()) await runtime.remove(worker.name);
      await runtime.close();
      await rm(scratch, { recursive: true, force: true });
    },
  };
  return router;
}

/** The header that lets a test call a worker (or a foreign server's guard) directly, as its router does. */
export function workerSecretHeader(runtime: Runtime, endpoint: string): Record<string, string> {
  const secret = runtime.workerSecret?.(endpoint);
  assert.ok(secret, `the runtime knows the secret of ${endpoint}`);
  return { [WORKER_SECRET_HEADER]: secret };
}

/**
 * Digit `i` of ds-550 inferred through the router `t` (job `job`) and straight from the
 * worker's server (with the worker secret, as the router calls it): both answer alike,
 * and right.
 */
export async function assertRoutedAsDirect(t: TestRouter, endpoint: string, job: string, i: number) {
  const body = {
    inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[i]!.inputs.pixels }],
  };
  const routed = await postJson(`${t.url}/v2/models/${job}/infer`, body);
  assert.equal(routed.status, 200, JSON.stringify(routed.body));
  const direct = await postJson(
    `${endpoint}/v2/models/${job}/infer`,
    body,
    workerSecretHeader(t.runtime, endpoint),
  );
  assert.equal(direct.status, 200, JSON.stringify(direct.body));
  assert.deepEqual(routed.body.outputs[0].data, direct.body.outputs[0].data);
  assert.equal(routed.body.outputs[0].data[0], DIGITS[i]!.label);
}

/**
 * The original DEPLOY_CREATE (`body`, job a1) on a foreign server: it answers ready, the
 * worker carries the serving runtime's name, and inference is routed to it. The worker.
 */
export async function assertDeployedOn(
  t: TestRouter,
  body: string,
  servingRuntime: string,
): Promise<WorkerInfo> {
  const response = await postJson(`${t.url}/inference_router/`, body);
  assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
  assert.equal(response.body.state, 'ready');
  const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
  assert.equal(worker.labels[LABELS.servingRuntime], servingRuntime);
  for (const i of [0, 1, 2]) await assertRoutedAsDirect(t, worker.endpoint!, 'a1', i);
  return worker;
}

/**
 * The original DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE (`bodies`, job a1) on a foreign
 * server: each succeeds, the unload leaves the model not READY in the server's own
 * repository index, and the terminate ends the server.
 */
export async function assertLoadUnloadTerminate(t: TestRouter, bodies: string[]): Promise<void> {
  const states: string[] = [];
  for (const body of bodies) {
    const response = await postJson(`${t.url}/inference_router/`, body);
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
    states.push(`${response.body.operation_type}:${response.body.state}`);
    if (response.body.operation_type === 'DEPLOY_UNLOAD') {
      const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
      const index = await postJson(
        `${worker.endpoint}/v2/repository/index`,
        {},
        workerSecretHeader(t.runtime, worker.endpoint!),
      );
      assert.equal(index.status, 200);
      assert.notEqual(index.body.find((e: { name: string }) => e.name === 'a1')?.state, 'READY');
    }
  }
  assert.deepEqual(states, ['DEPLOY_LOAD:ready', 'DEPLOY_UNLOAD:unloaded', 'TERMINATE:terminated']);
  assert.deepEqual(await t.runtime.list(), [], 'the server process is gone');
}

/**
 * The original TEMP (`body`) on a foreign server: it runs all of ds-550 and reports the
 * accuracy that training measured for `model` (its model.json). The response body.
 */
export async function assertTempAsTrained(t: TestRouter, body: string, model: string) {
  const manifest = JSON.parse(await readFile(path.join(MODELS_DIR, model, 'model.json'), 'utf8'));
  const response = await postJson(`${t.url}/inference_router/`, body);
  assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
  assert.equal(response.body.state, 'terminated');
  assert.equal(response.body.result.count, 550);
  assert.equal(response.body.result.correct, Math.round(manifest.accuracy['ds-550'] * 550));
  assert.equal(response.body.result.accuracy, manifest.accuracy['ds-550']);
  return response.body;
}
