/**
 * Seldon MLServer as a worker on the process runtime: the built-in `mlserver` entry,
 * found on the PATH (the tests' venv, scripts/python-venv.sh), behind modeldock's guard
 * (the scenario: runtime-mlserver.scenario.ts). A killed MLServer is restarted, a
 * restarted router adopts it, and DEPLOY_UNLOAD gives its memory back (a restart without
 * the model: MLServer keeps an unloaded model's memory), against an MLServer started by hand.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import type { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { processUsage } from '../../src/process-usage.js';
import { LABELS } from '../../src/runtime/runtime.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { DIGITS, ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { MODELS_DIR } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { venvBin, venvPython } from '../helpers/python.js';
import { getJson, postJson, waitForServer } from '../helpers/router.js';
import { assertRoutedAsDirect, startScratchRouter, type ScratchRouter } from '../helpers/scratch-router.js';
import { runMlserverScenario } from './runtime-mlserver.scenario.js';

/**
 * The resident memory of an MLServer started by hand as the built-in entry starts it,
 * with an empty repository, once ready: what an idle server holds.
 */
async function idleMlserverMemory(): Promise<number> {
  const repository = await mkdtemp(path.join(os.tmpdir(), 'modeldock-mls-idle-'));
  const [http, grpc, metrics] = [await freePort(), await freePort(), await freePort()];
  const server = spawn(venvBin('mlserver'), ['start', repository], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      MLSERVER_HOST: '127.0.0.1',
      MLSERVER_HTTP_PORT: String(http),
      MLSERVER_GRPC_PORT: String(grpc),
      MLSERVER_METRICS_PORT: String(metrics),
      MLSERVER_METRICS_ENDPOINT: '',
      MLSERVER_LOAD_MODELS_AT_STARTUP: 'false',
      MLSERVER_PARALLEL_WORKERS: '0',
    },
    stdio: 'ignore',
  });
  try {
    const client = new WorkerClient();
    await client.waitUntilReady(`http://127.0.0.1:${http}`, {
      timeoutMs: 60_000,
      isAlive: async () => server.exitCode === null,
    });
    await client.close();
    const status = await readFile(`/proc/${server.pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)![1]) * 1024;
  } finally {
    server.kill('SIGKILL');
    await rm(repository, { recursive: true, force: true });
  }
}
const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-132"'));
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
  whileLoaded: (context) => {
    it('a killed MLServer is restarted with its model; a restarted router adopts the running one and still translates binary tensors', async () => {
      let t = context.router();
      const before = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
      const serverId = before.labels[LABELS.server]!;
      const restarted = waitForServer(
        t.router,
        serverId,
        (server) => server.state === 'ready' && server.workerId !== null && server.workerId !== before.id,
        90_000,
      );
      await (t.runtime as ProcessRuntime).kill(before.name);
      await restarted;
      const again = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
      assert.notEqual(again.id, before.id, 'a new MLServer process');
      await assertRoutedAsDirect(t, again.endpoint!, 'a1', 6);

      t = await scratch!.restart();
      context.replaceRouter(t);
      const adopted = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
      assert.equal(adopted.id, again.id, 'the same MLServer process, not a new one');
      const job = await getJson(`${t.url}/v1/jobs/a1`);
      assert.equal(job.body.state, 'ready', JSON.stringify(job.body));
      // The new router's route knows MLServer takes no binary tensors: a binary request still works.
      const digit = DIGITS[7]!;
      const header = Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'pixels', datatype: 'FP32', shape: [1, 64], parameters: { binary_data_size: 256 } },
          ],
          outputs: [{ name: 'predict', parameters: { binary_data: true } }],
        }),
      );
      const answer = await fetch(`${t.url}/v2/models/a1/infer`, {
        method: 'POST',
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(header.length),
        },
        body: Buffer.concat([header, Buffer.from(new Float32Array(digit.inputs.pixels).buffer)]),
      });
      assert.equal(answer.status, 200, await answer.clone().text());
      const bytes = Buffer.from(await answer.arrayBuffer());
      const headerLength = Number(answer.headers.get('inference-header-content-length'));
      const outputs = JSON.parse(bytes.subarray(0, headerLength).toString()).outputs;
      assert.equal(outputs[0].parameters.binary_data_size, 8);
      assert.equal(bytes.readBigInt64LE(headerLength), BigInt(digit.label));
      assert.equal((await t.runtime.list()).length, 1, 'adoption started no second server');
    });

    it('DEPLOY_UNLOAD gives MLServer’s memory back: restarted without the model, near an idle server’s', async () => {
      const t = context.router();
      const before = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
      const loaded = (await t.runtime.stats(before.name))!.memoryBytes;
      const response = await postJson(`${t.url}/inference_router/`, requests[2]!);
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 800));
      assert.equal(response.body.state, 'unloaded');
      const after = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
      assert.notEqual(after.id, before.id, 'a new MLServer process');
      const unloaded = (await t.runtime.stats(after.name))!.memoryBytes;
      // An idle MLServer started by hand, and the guard in front of the worker's (its own
      // process: the worker's memory is the guard's and the server's together).
      const guard = await processUsage(Number(/^pid:(\d+):/.exec(after.id)![1]));
      const idle = (await idleMlserverMemory()) + guard!.rssBytes;
      const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
      const figures = `loaded ${mib(loaded)}, after the unload ${mib(unloaded)}, an idle MLServer and its guard ${mib(idle)}`;
      assert.ok(loaded - idle > 32 * 2 ** 20, `loading m-132 takes memory (${figures})`);
      assert.ok(unloaded < idle + (loaded - idle) / 4, `memory is back near the idle server's (${figures})`);
      // The operation says what happened: a restart, not a repository unload.
      const ops = await getJson(`${t.url}/v1/operations?job_id=a1&type=DEPLOY_UNLOAD&limit=1`);
      const steps = ops.body.operations[0].steps.map((step: { name: string }) => step.name);
      assert.deepEqual(steps, ['drain', 'stop', 'start', 'wait_ready']);
      // Inference loads the model again on demand and answers.
      await assertRoutedAsDirect(t, after.endpoint!, 'a1', 3);
    });
  },
});
