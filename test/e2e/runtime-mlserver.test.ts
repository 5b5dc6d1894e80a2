/**
 * Seldon MLServer as a worker on the process runtime: the built-in `mlserver` entry,
 * found on the PATH (the tests' venv, scripts/python-venv.sh), serves m-132, the example
 * store's scikit-learn model. The original five requests (model id changed) work on it,
 * TEMP through its infer calls reports m-132's measured accuracy, and inference through
 * the router answers as MLServer does when called directly. MLServer refuses the binary
 * tensor extension; NVIDIA's tritonclient with its defaults (binary) works through the
 * router all the same, over HTTP and gRPC, because the router translates for it.
 */
import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { LABELS } from '../../src/runtime/runtime.js';
import { DIGITS, ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { venvBin, venvPython } from '../helpers/python.js';
import { postJson, type TestRouter } from '../helpers/router.js';
import {
  assertDeployedOn,
  assertLoadUnloadTerminate,
  startScratchRouter,
  type ScratchRouter,
} from '../helpers/scratch-router.js';

const run = promisify(execFile);
const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-132"'));

describe('MLServer as a worker (process runtime)', { timeout: 300_000 }, () => {
  const originalPath = process.env.PATH;
  let scratch: ScratchRouter;
  let t: TestRouter;
  let grpcPort: number;

  before(async () => {
    venvPython('mlserver_sklearn');
    // The built-in entry runs `mlserver` from the PATH, as an operator's machine would.
    process.env.PATH = `${path.dirname(venvBin('mlserver'))}${path.delimiter}${originalPath}`;
    grpcPort = await freePort();
    scratch = await startScratchRouter(
      'mls',
      async ({ modelsDir }) => {
        await cp(path.join(MODELS_DIR, 'm-132'), path.join(modelsDir, 'm-132'), { recursive: true });
      },
      { MODELDOCK_GRPC_PORT: String(grpcPort) },
    );
    t = scratch.t;
  });
  after(async () => {
    await scratch?.cleanup();
    process.env.PATH = originalPath;
  });

  it('DEPLOY_CREATE starts MLServer and loads m-132 under the job name; inference is routed to it', async () => {
    await assertDeployedOn(t, requests[0]!, 'mlserver');
  });

  it('tritonclient with its defaults (binary tensors) infers through the router over HTTP and gRPC as MLServer answers JSON', async () => {
    const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
    const count = 24;
    const digits = DIGITS.slice(0, count);
    // MLServer itself refuses a binary body: what the router translates for.
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], parameters: { binary_data_size: 256 } }],
      }),
    );
    const refused = await fetch(`${worker.endpoint}/v2/models/a1/infer`, {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
      body: Buffer.concat([header, Buffer.from(new Float32Array(digits[0]!.inputs.pixels).buffer)]),
    });
    // (422 or 500, depending on whether the bytes happen to be read as text)
    assert.ok(
      refused.status >= 400,
      `MLServer does not take the binary tensor extension (${refused.status})`,
    );
    // The server's own answer, called directly with JSON tensors.
    const direct = await postJson(`${worker.endpoint}/v2/models/a1/infer`, {
      inputs: [
        {
          name: 'pixels',
          datatype: 'FP32',
          shape: [count, 64],
          data: digits.flatMap((d) => d.inputs.pixels),
        },
      ],
    });
    assert.equal(direct.status, 200, JSON.stringify(direct.body));
    const expected = (direct.body.outputs[0].data as unknown[]).flat(Infinity);
    assert.equal(expected.length, count);
    const { stdout } = await run(
      venvPython('tritonclient'),
      [
        path.join(REPO_ROOT, 'test/python/tritonclient_predict.py'),
        new URL(t.url).host,
        `127.0.0.1:${grpcPort}`,
        'a1',
        path.join(DATASETS_DIR, 'ds-550/records.jsonl'),
        String(count),
        'predict',
      ],
      { timeout: 120_000 },
    );
    const cases = JSON.parse(stdout) as Record<string, number[]>;
    assert.deepEqual(Object.keys(cases).sort(), [
      'grpc',
      'http_binary_output',
      'http_default',
      'http_gzip',
      'http_json',
      'http_json_in_binary_out',
    ]);
    for (const [name, predictions] of Object.entries(cases)) assert.deepEqual(predictions, expected, name);
    // m-132 is right on most of them (528 of ds-550's 550).
    const right = expected.filter((label, i) => label === digits[i]!.label).length;
    assert.ok(right >= count - 3, `${right} of ${count} right`);
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
