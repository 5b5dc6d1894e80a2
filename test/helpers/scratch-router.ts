/**
 * A router on the process runtime over a model store and serving-runtime directory of
 * the test's own (in a scratch directory), for tests of the serving-runtime catalog.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { DATASETS_DIR } from './paths.js';
import { startTestRouter, uniqueInstance, type TestRouter } from './router.js';

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
