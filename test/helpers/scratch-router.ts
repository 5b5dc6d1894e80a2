/**
 * A router on the process runtime over a model store and serving-runtime directory of
 * the test's own (in a scratch directory), for tests of the serving-runtime catalog.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';
import { DATASETS_DIR } from './paths.js';
import { DIGITS } from './fixtures.js';
import { postJson, startTestRouter, uniqueInstance, type TestRouter } from './router.js';

export interface ScratchRouter {
  t: TestRouter;
  instance: string;
  modelsDir: string;
  runtimesDir: string;
  stateDir: string;
  /** Stop the router, remove its workers and the scratch directory. */
  cleanup(): Promise<void>;
}

/** `fill` writes the models and runtime entries before the router starts (it reads the catalog once). */
export async function startScratchRouter(
  prefix: string,
  fill: (dirs: { modelsDir: string; runtimesDir: string }) => Promise<void>,
): Promise<ScratchRouter> {
  const instance = uniqueInstance(prefix);
  const scratch = await mkdtemp(path.join(os.tmpdir(), `modeldock-${prefix}-`));
  const modelsDir = path.join(scratch, 'models');
  const runtimesDir = path.join(scratch, 'runtimes');
  const stateDir = path.join(scratch, 'state');
  await mkdir(modelsDir);
  await mkdir(runtimesDir);
  await fill({ modelsDir, runtimesDir });
  const makeRuntime = () => new ProcessRuntime({ instance, stateDir, modelsDir, datasetsDir: DATASETS_DIR });
  const t = await startTestRouter({
    instance,
    runtime: makeRuntime,
    env: { MODELDOCK_MODELS_DIR: modelsDir, MODELDOCK_RUNTIMES_DIR: runtimesDir },
  });
  return {
    t,
    instance,
    modelsDir,
    runtimesDir,
    stateDir,
    cleanup: async () => {
      await t.stop();
      const runtime = makeRuntime();
      for (const worker of await runtime.list()) await runtime.remove(worker.name);
      await runtime.close();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}

/** The header that lets a test call a worker (or a foreign server's guard) directly, as its router does. */
export function workerSecretHeader(runtime: Runtime, endpoint: string): Record<string, string> {
  const secret = runtime.workerSecret?.(endpoint);
  assert.ok(secret, `the runtime knows the secret of ${endpoint}`);
  return { [WORKER_SECRET_HEADER]: secret };
}

/**
 * Digit `i` of ds-550 inferred through the router (job `job`) and straight from the
 * worker's server (with its secret, in `headers`): both answer alike, and right.
 */
export async function assertRoutedAsDirect(
  routerUrl: string,
  endpoint: string,
  job: string,
  i: number,
  headers: Record<string, string> = {},
) {
  const body = {
    inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[i]!.inputs.pixels }],
  };
  const routed = await postJson(`${routerUrl}/v2/models/${job}/infer`, body);
  assert.equal(routed.status, 200, JSON.stringify(routed.body));
  const direct = await postJson(`${endpoint}/v2/models/${job}/infer`, body, headers);
  assert.equal(direct.status, 200, JSON.stringify(direct.body));
  assert.deepEqual(routed.body.outputs[0].data, direct.body.outputs[0].data);
  assert.equal(routed.body.outputs[0].data[0], DIGITS[i]!.label);
}
