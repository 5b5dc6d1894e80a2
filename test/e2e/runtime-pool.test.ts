/**
 * A warm pool of MLServers on the process runtime (the scenario: runtime-pool.scenario.ts),
 * `mlserver` from the tests' venv on the PATH.
 */
import { cp } from 'node:fs/promises';
import path from 'node:path';
import type { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { MODELS_DIR } from '../helpers/paths.js';
import { venvBin, venvPython } from '../helpers/python.js';
import { startScratchRouter, type ScratchRouter } from '../helpers/scratch-router.js';
import { POOL_ENV, runPoolScenario } from './runtime-pool.scenario.js';

const originalPath = process.env.PATH;
let scratch: ScratchRouter | undefined;

runPoolScenario('process runtime', {
  start: async () => {
    venvPython('mlserver_sklearn');
    process.env.PATH = `${path.dirname(venvBin('mlserver'))}${path.delimiter}${originalPath}`;
    scratch = await startScratchRouter(
      'mlspool',
      async ({ modelsDir }) => {
        await cp(path.join(MODELS_DIR, 'm-132'), path.join(modelsDir, 'm-132'), { recursive: true });
      },
      POOL_ENV,
    );
    return scratch.t;
  },
  restart: () => scratch!.restart(),
  stop: async () => {
    await scratch?.cleanup();
    process.env.PATH = originalPath;
  },
  kill: (t, name) => (t.runtime as ProcessRuntime).kill(name),
});
