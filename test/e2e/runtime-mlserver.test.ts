/**
 * Seldon MLServer as a worker on the process runtime: the built-in `mlserver` entry,
 * found on the PATH (the tests' venv, scripts/python-venv.sh), behind modeldock's guard
 * (the scenario: runtime-mlserver.scenario.ts).
 */
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { MODELS_DIR } from '../helpers/paths.js';
import { venvBin, venvPython } from '../helpers/python.js';
import { startScratchRouter, type ScratchRouter } from '../helpers/scratch-router.js';
import { runMlserverScenario } from './runtime-mlserver.scenario.js';

const originalPath = process.env.PATH;
let scratch: ScratchRouter | undefined;

runMlserverScenario('process runtime', {
  start: async (grpcPort) => {
    venvPython('mlserver_sklearn');
    // The built-in entry runs `mlserver` from the PATH, as an operator's machine would.
    process.env.PATH = `${path.dirname(venvBin('mlserver'))}${path.delimiter}${originalPath}`;
    scratch = await startScratchRouter(
      'mls',
      async ({ modelsDir }) => {
        await cp(path.join(MODELS_DIR, 'm-132'), path.join(modelsDir, 'm-132'), { recursive: true });
      },
      { MODELDOCK_GRPC_PORT: String(grpcPort) },
    );
    return scratch.t;
  },
  stop: async () => {
    await scratch?.cleanup();
    process.env.PATH = originalPath;
  },
});
