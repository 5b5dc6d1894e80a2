import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { runRuntimeContract } from './runtime.contract.js';

const stateDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-process-runtime-'));

runRuntimeContract('process', {
  make: async (instance) =>
    new ProcessRuntime({ instance, stateDir, modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR }),
  killExternally: async (runtime, name) => (runtime as ProcessRuntime).kill(name),
  cleanup: async (instances) => {
    for (const instance of instances) {
      const runtime = new ProcessRuntime({
        instance,
        stateDir,
        modelsDir: MODELS_DIR,
        datasetsDir: DATASETS_DIR,
      });
      for (const worker of await runtime.list()) await runtime.remove(worker.name);
      await runtime.close();
    }
    await rm(stateDir, { recursive: true, force: true });
  },
});
