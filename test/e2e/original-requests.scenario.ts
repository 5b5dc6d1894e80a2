/**
 * The five requests of the original POC README, sent verbatim (bodies byte for byte) to
 * a real router, on any runtime: what the caller sees is the same everywhere, and the
 * runtime's own view (the engine's containers, the cluster's Pods) is checked through a
 * backend. original-requests.test.ts runs it on Docker, kubernetes-original-requests.test.ts
 * on the Kubernetes test cluster.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { MODELS_DIR } from '../helpers/paths.js';
import { getJson, postJson, type TestRouter } from '../helpers/router.js';

const [create, load, unload, terminate, temp] = ORIGIN_REQUESTS;
/** ds-550 is the 550 images held out of m-131's training; its accuracy on them, as training measured it. */
const DS_550_RECORDS = 550;
const M131_DS550_ACCURACY: number = JSON.parse(
  readFileSync(path.join(MODELS_DIR, 'm-131', 'model.json'), 'utf8'),
).accuracy['ds-550'];

/** An answer of POST /inference_router/ (read loosely, as a caller would). */
type OriginalAnswer = Record<string, any>;

export interface OriginalRequestsBackend {
  /** What this runtime calls a worker, for the test names: `container`, `Pod`. */
  worker: string;
  start(): Promise<TestRouter>;
  stop(t: TestRouter): Promise<void>;
  /** The ids (as the router reports them in container_id) of the instance's workers, from the runtime itself. */
  workerIds(t: TestRouter): Promise<string[]>;
  /** The worker DEPLOY_CREATE answered with, as the runtime sees it: labels, hardening, endpoint. */
  checkCreated(t: TestRouter, answer: OriginalAnswer): Promise<void>;
  /** Whether the answer's worker runs, as the runtime sees it. */
  isRunning(t: TestRouter, answer: OriginalAnswer): Promise<boolean>;
}

export function runOriginalRequests(runtimeName: string, backend: OriginalRequestsBackend): void {
  const { worker } = backend;
  describe(`the original README requests, verbatim, on ${runtimeName}`, () => {
    let t: TestRouter;
    before(async () => {
      t = await backend.start();
    });
    after(async () => {
      if (t) await backend.stop(t);
    });

    it(`1-1 DEPLOY_CREATE creates one labelled, hardened, ready ${worker} for job a1`, async () => {
      const { status, body } = await postJson(`${t.url}/inference_router/`, create);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.job_id, 'a1');
      assert.equal(body.state, 'ready');
      assert.equal(body.server_id, 'inf-0001');
      assert.equal(body.container_name, `${t.instance}-inf-0001`);
      assert.match(body.warnings.join('\n'), /container_id "aa" .*ignored/);
      assert.deepEqual(
        body.steps.map((s: { name: string }) => s.name),
        ['record', 'create', 'start', 'wait_ready', 'load'],
      );
      assert.deepEqual(
        await backend.workerIds(t),
        [body.container_id],
        `exactly one ${worker}, the one answered`,
      );
      await backend.checkCreated(t, body);
    });

    it('1-2 DEPLOY_LOAD with a made-up container_id acts on the job server and reports the id', async () => {
      const before = await backend.workerIds(t);
      const { status, body } = await postJson(`${t.url}/inference_router/`, load);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.state, 'ready');
      assert.equal(body.server_id, 'inf-0001');
      assert.match(body.warnings.join('\n'), /1cfed7648adeede5.*ignored/);
      assert.deepEqual(await backend.workerIds(t), before, `no ${worker} created or removed`);
    });

    it(`1-3 DEPLOY_UNLOAD releases the model and keeps the ${worker}`, async () => {
      const { status, body } = await postJson(`${t.url}/inference_router/`, unload);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.state, 'unloaded');
      assert.equal(await backend.isRunning(t, body), true, `the ${worker} stays up for a fast reload`);
      const server = await getJson(`${t.url}/v1/servers/inf-0001`);
      // Through the router's client: the worker answers only holders of its secret.
      const index = await t.router.workers.index(server.body.endpoint!);
      assert.equal(
        index.some((m: { name: string; state: string }) => m.name === 'a1' && m.state === 'READY'),
        false,
        'the worker no longer holds the model',
      );
    });

    it(`1-4 TERMINATE removes the ${worker} and keeps the record as history`, async () => {
      const { status, body } = await postJson(`${t.url}/inference_router/`, terminate);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.state, 'terminated');
      assert.deepEqual(await backend.workerIds(t), []);
      const server = await getJson(`${t.url}/v1/servers/inf-0001`);
      assert.equal(server.body.state, 'terminated');
      assert.ok(server.body.terminated_at);
    });

    it(`1-5 TEMP runs m-131 over ds-550, returns the predictions and leaves no ${worker}`, async () => {
      const { status, body } = await postJson(`${t.url}/inference_router/`, temp);
      assert.equal(status, 200, JSON.stringify(body).slice(0, 500));
      assert.equal(body.operation_type, 'TEMP');
      assert.equal(body.state, 'terminated');
      // Every record of ds-550, each predicted, and exactly the accuracy training measured
      // on them (models/m-131/model.json keeps it to four places).
      assert.equal(body.result.count, DS_550_RECORDS);
      assert.equal(body.result.predictions.length, DS_550_RECORDS);
      assert.equal(
        Number(body.result.accuracy.toFixed(4)),
        M131_DS550_ACCURACY,
        `accuracy ${body.result.accuracy}`,
      );
      assert.match(body.warnings.join('\n'), /container_id "ASDF"/);
      assert.deepEqual(
        body.steps.map((s: { name: string }) => s.name),
        ['record', 'create', 'start', 'wait_ready', 'load', 'infer', 'remove'],
      );
      assert.deepEqual(await backend.workerIds(t), []);
      const ops = await getJson(`${t.url}/v1/operations?job_id=a1`);
      assert.deepEqual(
        ops.body.operations.map((o: { type: string; status: string }) => `${o.type}:${o.status}`),
        [
          'TEMP:succeeded',
          'TERMINATE:succeeded',
          'DEPLOY_UNLOAD:succeeded',
          'DEPLOY_LOAD:succeeded',
          'DEPLOY_CREATE:succeeded',
        ],
      );
    });
  });
}
