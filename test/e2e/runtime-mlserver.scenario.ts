/**
 * Seldon MLServer as a worker, the same on every runtime that runs it (process:
 * runtime-mlserver.test.ts; Docker: runtime-mlserver-docker.test.ts): the built-in
 * `mlserver` entry serves m-132, the example store's scikit-learn model, behind
 * modeldock's guard. The original five requests (model id changed) work on it, TEMP
 * through its infer calls reports m-132's measured accuracy, inference through the
 * router answers as MLServer does when called directly, and a caller without the
 * worker secret is refused by the guard. MLServer refuses the binary tensor extension;
 * NVIDIA's tritonclient with its defaults (binary) works through the router all the
 * same, over HTTP and gRPC, because the router translates for it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { LABELS, type WorkerInfo } from '../../src/runtime/runtime.js';
import { workerBodyLimit } from '../../src/worker-limits.js';
import { DIGITS, ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { DATASETS_DIR, REPO_ROOT } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { venvPython } from '../helpers/python.js';
import { getJson, postJson, type TestRouter } from '../helpers/router.js';
import {
  assertDeployedOn,
  assertLoadUnloadTerminate,
  workerSecretHeader,
} from '../helpers/scratch-router.js';

const run = promisify(execFile);
const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-132"'));

export interface MlserverTarget {
  /** A router serving the example store's m-132, with its gRPC service on `grpcPort`. */
  start(grpcPort: number): Promise<TestRouter>;
  stop(t: TestRouter): Promise<void>;
  /** What the runtime must show of the created worker (its container, its process). */
  checkCreated?(t: TestRouter, worker: WorkerInfo): Promise<void>;
  /**
   * Tests of this runtime alone, run while job a1 is deployed (before the original
   * unload); one that restarts the router hands the new one on.
   */
  whileLoaded?(context: { router(): TestRouter; replaceRouter(t: TestRouter): void }): void;
}

export function runMlserverScenario(runtime: string, target: MlserverTarget): void {
  describe(`MLServer as a worker (${runtime})`, { timeout: 300_000 }, () => {
    let t: TestRouter;
    let grpcPort: number;
    const jobWorker = async () => (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;

    before(async () => {
      grpcPort = await freePort();
      t = await target.start(grpcPort);
    });
    after(async () => {
      if (t) await target.stop(t);
    });

    it('DEPLOY_CREATE starts MLServer and loads m-132 under the job name; inference is routed to it', async () => {
      const worker = await assertDeployedOn(t, requests[0]!, 'mlserver');
      assert.equal(worker.labels[LABELS.model], 'm-132');
      await target.checkCreated?.(t, worker);
    });

    it('tritonclient with its defaults (binary tensors) infers through the router over HTTP and gRPC as MLServer answers JSON', async () => {
      const worker = await jobWorker();
      const secret = workerSecretHeader(t.runtime, worker.endpoint!);
      const count = 24;
      const digits = DIGITS.slice(0, count);
      // MLServer itself refuses a binary body: what the router translates for.
      const header = Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'pixels', datatype: 'FP32', shape: [1, 64], parameters: { binary_data_size: 256 } },
          ],
        }),
      );
      const refused = await fetch(`${worker.endpoint}/v2/models/a1/infer`, {
        method: 'POST',
        headers: {
          ...secret,
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
      const direct = await postJson(
        `${worker.endpoint}/v2/models/a1/infer`,
        {
          inputs: [
            {
              name: 'pixels',
              datatype: 'FP32',
              shape: [count, 64],
              data: digits.flatMap((d) => d.inputs.pixels),
            },
          ],
        },
        secret,
      );
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

    it('the guard obeys only callers with the worker secret and keeps the body limit', async () => {
      const { endpoint } = await jobWorker();
      const body = {
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
      };
      assert.equal((await postJson(`${endpoint}/v2/models/a1/infer`, body)).status, 401);
      const wrong = { 'x-modeldock-worker-secret': 'not-the-secret' };
      assert.equal((await postJson(`${endpoint}/v2/repository/models/a1/unload`, {}, wrong)).status, 401);
      assert.equal((await getJson(`${endpoint}/v2/health/ready`)).status, 200, 'health checks are open');
      // One byte past the worker's body limit (from its memory limit): refused on the
      // declared length, before the body is sent, as modeldock's worker refuses it.
      const limit = workerBodyLimit(t.config.workerMemoryBytes);
      const secret = workerSecretHeader(t.runtime, endpoint!)['x-modeldock-worker-secret']!;
      assert.match(await statusLineOf(endpoint!, secret, limit + 1), /^HTTP\/1\.1 413/);
      // None of that reached the model: it still answers through the router.
      assert.equal((await postJson(`${t.url}/v2/models/a1/infer`, body)).status, 200);
    });

    target.whileLoaded?.({ router: () => t, replaceRouter: (next) => (t = next) });

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
}

/** The status line a worker answers to an infer request that declares `length` bytes and sends none. */
function statusLineOf(endpoint: string, secret: string, length: number): Promise<string> {
  const { hostname, port } = new URL(endpoint);
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () =>
      socket.write(
        `POST /v2/models/a1/infer HTTP/1.1\r\nhost: w\r\ncontent-type: application/json\r\n` +
          `x-modeldock-worker-secret: ${secret}\r\ncontent-length: ${length}\r\n\r\n`,
      ),
    );
    socket.once('data', (chunk) => {
      resolve(chunk.toString('latin1').split('\r\n')[0]!);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}
