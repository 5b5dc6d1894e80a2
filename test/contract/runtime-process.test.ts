import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { runRuntimeContract } from './runtime.contract.js';

const stateDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-process-runtime-'));
const make = (instance: string) =>
  new ProcessRuntime({ instance, stateDir, modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR });

runRuntimeContract('process', {
  make: async (instance) => make(instance),
  killExternally: async (runtime, name) => {
    // From outside, as a crash or an operator would: the pid from the runtime id.
    const info = await runtime.inspect(name);
    const pid = Number(/^pid:(\d+):/.exec(info?.id ?? '')?.[1]);
    if (!pid) throw new Error(`${name} is not running (id ${info?.id})`);
    process.kill(pid, 'SIGKILL');
  },
  cleanup: async (instances) => {
    for (const instance of instances) {
      const runtime = make(instance);
      for (const worker of await runtime.list()) await runtime.remove(worker.name);
      await runtime.close();
    }
    await rm(stateDir, { recursive: true, force: true });
  },
});
