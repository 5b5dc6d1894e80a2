/**
 * Seldon MLServer as a worker on the process runtime: the built-in `mlserver` entry,
 * found on the PATH (the tests' venv, scripts/python-venv.sh), serves m-132, the example
 * store's scikit-learn model. The original five requests (model id changed) work on it,
 * TEMP through its infer calls reports m-132's measured accuracy, and inference through
 * the router answers as MLServer does when called directly.
 */
import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { MODELS_DIR } from '../helpers/paths.js';
import { venvBin, venvPython } from '../helpers/python.js';
import { postJson, type TestRouter } from '../helpers/router.js';
import {
  assertDeployedOn,
  assertLoadUnloadTerminate,
  startScratchRouter,
  type ScratchRouter,
} from '../helpers/scratch-router.js';

const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-132"'));

describe('MLServer as a worker (process runtime)', { timeout: 300_000 }, () => {
  const originalPath = process.env.PATH;
  let scratch: ScratchRouter;
  let t: TestRouter;

  before(async () => {
    venvPython('mlserver_sklearn');
    // The built-in entry runs `mlserver` from the PATH, as an operator's machine would.
    process.env.PATH = `${path.dirname(venvBin('mlserver'))}${path.delimiter}${originalPath}`;
    scratch = await startScratchRouter('mls', async ({ modelsDir }) => {
      await cp(path.join(MODELS_DIR, 'm-132'), path.join(modelsDir, 'm-132'), { recursive: true });
    });
    t = scratch.t;
  });
  after(async () => {
    await scratch?.cleanup();
    process.env.PATH = originalPath;
  });

  it('DEPLOY_CREATE starts MLServer and loads m-132 under the job name; inference is routed to it', async () => {
    await assertDeployedOn(t, requests[0]!, 'mlserver');
  });

  it('DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE drive MLServer through the repository extension', async () => {
    await assertLoadUnloadTerminate(t, requests.slice(1, 4));
  });

  it('TEMP runs ds-550 through its infer calls: 528 of 550 right, as training measured', async () => {
    const response = await postJson(`${t.url}/inference_router/`, requests[4]!);
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
    assert.equal(response.body.state, 'terminated');
    assert.equal(response.body.result.count, 550);
    assert.equal(response.body.result.correct, 528);
    assert.equal(response.body.result.accuracy, 0.96);
    assert.deepEqual(await t.runtime.list(), []);
  });
});
