/**
 * Seldon MLServer as a worker, the same on every runtime that runs it (process:
 * runtime-mlserver.test.ts; Docker: runtime-mlserver-docker.test.ts): the built-in
 * `mlserver` entry serves m-132, the example store's scikit-learn model, behind
 * modeldock's guard. The original five requests (model id changed) work on it, TEMP
 * through its infer calls reports m-132's measured accuracy, inference through the
 * router answers as MLServer does when called directly, and a caller without the
 * worker secret is refused by the guard.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import { workerBodyLimit } from '../../src/worker-limits.js';
import { DIGITS, ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { getJson, postJson, type TestRouter } from '../helpers/router.js';
import { assertRoutedAsDirect, workerSecretHeader } from '../helpers/scratch-router.js';

const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-132"'));

export interface MlserverTarget {
  start(): Promise<TestRouter>;
  stop(t: TestRouter): Promise<void>;
  /** What the runtime must show of the created worker (its container, its process). */
  checkCreated?(t: TestRouter, answer: { container_id: string }): Promise<void>;
}

export function runMlserverScenario(runtime: string, target: MlserverTarget): void {
  describe(`MLServer as a worker (${runtime})`, { timeout: 300_000 }, () => {
    let t: TestRouter;
    const worker = async () => (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;

    before(async () => {
      t = await target.start();
    });
    after(async () => {
      if (t) await target.stop(t);
    });

    it('DEPLOY_CREATE starts MLServer and loads m-132 under the job name; inference is routed to it', async () => {
      const response = await postJson(`${t.url}/inference_router/`, requests[0]!);
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
      assert.equal(response.body.state, 'ready');
      const { endpoint, labels } = await worker();
      assert.equal(labels[LABELS.servingRuntime], 'mlserver');
      assert.equal(labels[LABELS.model], 'm-132');
      await target.checkCreated?.(t, response.body);
      const secret = workerSecretHeader(t.runtime, endpoint!);
      for (const i of [0, 1, 2]) await assertRoutedAsDirect(t.url, endpoint!, 'a1', i, secret);
    });

    it('the guard obeys only callers with the worker secret and keeps the body limit', async () => {
      const { endpoint } = await worker();
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

    it('DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE drive MLServer through the repository extension', async () => {
      const states: string[] = [];
      for (const body of requests.slice(1, 4)) {
        const response = await postJson(`${t.url}/inference_router/`, body);
        assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
        states.push(`${response.body.operation_type}:${response.body.state}`);
        if (response.body.operation_type === 'DEPLOY_UNLOAD') {
          const { endpoint } = await worker();
          const index = await postJson(
            `${endpoint}/v2/repository/index`,
            {},
            workerSecretHeader(t.runtime, endpoint!),
          );
          assert.equal(index.status, 200);
          assert.notEqual(index.body.find((e: { name: string }) => e.name === 'a1')?.state, 'READY');
        }
      }
      assert.deepEqual(states, ['DEPLOY_LOAD:ready', 'DEPLOY_UNLOAD:unloaded', 'TERMINATE:terminated']);
      assert.deepEqual(await t.runtime.list(), [], 'the MLServer worker is gone');
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
