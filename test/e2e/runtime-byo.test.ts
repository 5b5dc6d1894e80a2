/**
 * Bring your own OIP v2 server: a minimal server written for this test (Python, standard
 * library only: test/fixtures/oip-server) becomes a worker through an operator's
 * serving-runtime entry, on the process runtime. The original five requests (model id
 * changed) and inference through the router work on it as on modeldock's own worker.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readlink, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { processStartTime } from '../../src/runtime/process/proc.js';
import { LABELS } from '../../src/runtime/runtime.js';
import { DIGITS, ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { venvPython } from '../helpers/python.js';
import { getJson, postJson, type TestRouter } from '../helpers/router.js';
import {
  assertRoutedAsDirect,
  startScratchRouter,
  workerSecretHeader,
  type ScratchRouter,
} from '../helpers/scratch-router.js';

const SERVER = path.join(REPO_ROOT, 'test/fixtures/oip-server/nearest_mean_server.py');

/** Per-class mean of the training digits: what the test's server classifies with. */
function classMeans(): number[][] {
  const rows = gunzipSync(readFileSync(path.join(REPO_ROOT, 'training/optdigits.csv.gz')))
    .toString('utf8')
    .trim()
    .split('\n')
    .map((line) => line.split(',').map(Number));
  const sums = Array.from({ length: 10 }, () => new Array<number>(64).fill(0));
  const counts = new Array<number>(10).fill(0);
  for (const row of rows) {
    const label = row[64]!;
    counts[label]!++;
    row.slice(0, 64).forEach((value, i) => (sums[label]![i]! += value));
  }
  return sums.map((sum, label) => sum.map((value) => value / counts[label]!));
}

describe('bring your own OIP v2 server (process runtime)', { timeout: 240_000 }, () => {
  let scratch: ScratchRouter;
  let t: TestRouter;

  before(async () => {
    scratch = await startScratchRouter('byo', async ({ modelsDir, runtimesDir }) => {
      const model = path.join(modelsDir, 'm-byo');
      await mkdir(model);
      await writeFile(
        path.join(model, 'model.json'),
        JSON.stringify({
          description: 'nearest class mean of the training digits',
          format: 'nearest-mean',
          prediction_output: 'label',
          labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
        }),
      );
      await writeFile(path.join(model, 'means.json'), JSON.stringify({ means: classMeans() }));
      // The same model on a server that keeps 160 MiB after its unload.
      const leaky = path.join(modelsDir, 'm-leaky');
      await mkdir(leaky);
      await writeFile(
        path.join(leaky, 'model.json'),
        JSON.stringify({ format: 'nearest-mean', prediction_output: 'label' }),
      );
      await writeFile(
        path.join(leaky, 'means.json'),
        JSON.stringify({ means: classMeans(), ballast_mib: 160 }),
      );
      await writeFile(
        path.join(runtimesDir, 'nearest-mean.json'),
        JSON.stringify({
          name: 'nearest-mean',
          description: "the tests' own OIP v2 server",
          formats: [{ name: 'nearest-mean' }],
          process: {
            command: venvPython('json'),
            args: [SERVER, '--host', '{host}', '--port', '{port}', '--models', '{modelsDir}'],
          },
        }),
      );
    });
    t = scratch.t;
  });
  after(async () => {
    await scratch?.cleanup();
  });

  it('DEPLOY_CREATE starts the server through its catalog entry and loads the model under the job name', async () => {
    const create = ORIGIN_REQUESTS[0].replace('"m-131"', '"m-byo"');
    const response = await postJson(`${t.url}/inference_router/`, create);
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 600));
    assert.equal(response.body.state, 'ready');
    const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
    assert.equal(worker.labels[LABELS.servingRuntime], 'nearest-mean');
    assert.equal(worker.labels[LABELS.model], 'm-byo');
    // Its repository holds the job's model only, under the job's name.
    const repository = path.join(scratch.stateDir, scratch.instance, `${worker.name}.d`, 'models');
    assert.deepEqual(await readdir(repository), ['a1']);
    assert.equal(await readlink(path.join(repository, 'a1')), path.join(scratch.modelsDir, 'm-byo'));
  });

  it('routes inference to it: the router answers as the server does when called directly', async () => {
    const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
    for (const i of [0, 1, 2]) await assertRoutedAsDirect(t, worker.endpoint!, 'a1', i);
    const metadata = await getJson(`${t.url}/v2/models/a1`);
    assert.equal(metadata.status, 200);
    assert.equal(metadata.body.inputs[0].name, 'pixels');
  });

  it('the guard in front of it obeys only the router: a caller without the worker secret is refused', async () => {
    const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
    const body = {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
    };
    const anonymous = await postJson(`${worker.endpoint}/v2/models/a1/infer`, body);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.body.error, /x-modeldock-worker-secret/);
    const wrong = await postJson(
      `${worker.endpoint}/v2/repository/models/a1/unload`,
      {},
      {
        'x-modeldock-worker-secret': 'not-the-secret',
      },
    );
    assert.equal(wrong.status, 401);
    // Health checks answer anyone, as modeldock's worker's do (probes hold no secret).
    assert.equal((await getJson(`${worker.endpoint}/v2/health/ready`)).status, 200);
    // The refusals changed nothing: the model still answers through the router.
    const routed = await postJson(`${t.url}/v2/models/a1/infer`, body);
    assert.equal(routed.status, 200);
  });

  it('DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE drive it through the repository extension', async () => {
    const states: string[] = [];
    for (const body of ORIGIN_REQUESTS.slice(1, 4)) {
      const response = await postJson(`${t.url}/inference_router/`, body.replace('"m-131"', '"m-byo"'));
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 600));
      states.push(`${response.body.operation_type}:${response.body.state}`);
      if (response.body.operation_type === 'DEPLOY_UNLOAD') {
        const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
        const index = await postJson(
          `${worker.endpoint}/v2/repository/index`,
          {},
          workerSecretHeader(t.runtime, worker.endpoint!),
        );
        assert.deepEqual(index.body, [{ name: 'a1', state: 'UNAVAILABLE' }], 'unloaded on the server');
      }
    }
    assert.deepEqual(states, ['DEPLOY_LOAD:ready', 'DEPLOY_UNLOAD:unloaded', 'TERMINATE:terminated']);
    assert.deepEqual(await t.runtime.list(), [], 'the server process is gone');
  });

  it('TEMP runs the dataset through its infer calls in batches and reports count and accuracy', async () => {
    const response = await postJson(
      `${t.url}/inference_router/`,
      ORIGIN_REQUESTS[4].replace('"m-131"', '"m-byo"'),
    );
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 600));
    assert.equal(response.body.state, 'terminated');
    const result = response.body.result;
    assert.equal(result.count, 550);
    assert.equal(result.predictions.length, 550);
    assert.equal(result.predicted_labels[0], String(result.predictions[0]));
    // Nearest class mean gets most digits right (about 0.9); chance is 0.1.
    assert.ok(result.accuracy > 0.8, `accuracy ${result.accuracy}`);
    const expected = DIGITS.filter((d, i) => d.label === result.predictions[i]).length;
    assert.equal(result.correct, expected);
    assert.deepEqual(await t.runtime.list(), []);
  });

  it('DEPLOY_UNLOAD measures the server: memory back is kept running, memory kept gets a restart', async () => {
    const operation = (job: string, model: string, type: string) =>
      postJson(`${t.url}/inference_router/`, {
        job_id: job,
        model,
        dataset: 'ds-550',
        operation_type: type,
        container_id: 'aa',
      });
    const unloadRecord = async (job: string) => {
      const ops = await getJson(`${t.url}/v1/operations?job_id=${job}&type=DEPLOY_UNLOAD&limit=1`);
      const [op] = ops.body.operations;
      return { steps: op.steps.map((s: { name: string }) => s.name), warnings: op.warnings as string[] };
    };
    const workerOf = async (job: string) =>
      (await t.runtime.list()).find((w) => w.labels[LABELS.job] === job)!;
    for (const [job, model] of [
      ['frees', 'm-byo'],
      ['keeps', 'm-leaky'],
    ]) {
      const created = await operation(job!, model!, 'DEPLOY_CREATE');
      assert.equal(created.status, 200, JSON.stringify(created.body).slice(0, 600));
    }
    const before = { frees: await workerOf('frees'), keeps: await workerOf('keeps') };
    // The leaky model's server with it loaded (the server and its guard).
    const loaded = (await t.runtime.stats(before.keeps.name))!.memoryBytes;
    for (const job of ['frees', 'keeps']) {
      const unloaded = await operation(job, job === 'frees' ? 'm-byo' : 'm-leaky', 'DEPLOY_UNLOAD');
      assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body).slice(0, 600));
      assert.equal(unloaded.body.state, 'unloaded');
    }
    // The server that gave the memory back keeps running; its unload was measured.
    const frees = await unloadRecord('frees');
    assert.deepEqual(frees.steps, ['drain', 'unload', 'measure_memory']);
    assert.deepEqual(
      frees.warnings.filter((w) => /MiB/.test(w)),
      [],
    );
    assert.equal((await workerOf('frees')).id, before.frees.id);
    // The one that kept 160 MiB was restarted without the model, and the record says why.
    const keeps = await unloadRecord('keeps');
    assert.deepEqual(keeps.steps, ['drain', 'unload', 'measure_memory', 'stop', 'start', 'wait_ready']);
    assert.match(keeps.warnings.join(' '), /kept \d+ MiB after the unload \(\d+ MiB when idle\): restarted/);
    const after = await workerOf('keeps');
    assert.notEqual(after.id, before.keeps.id, 'a new server process');
    const memory = (await t.runtime.stats(after.name))!.memoryBytes;
    const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
    // The 160 MiB the model kept are gone with the old process.
    assert.ok(
      memory < loaded - 100 * 2 ** 20,
      `the restarted server holds ${mib(memory)} MiB, ${mib(loaded)} MiB with the model loaded`,
    );
    // Both serve again on demand.
    for (const job of ['frees', 'keeps'])
      await assertRoutedAsDirect(t, (await workerOf(job)).endpoint!, job, 0);
    for (const job of ['frees', 'keeps']) {
      const ended = await operation(job, job === 'frees' ? 'm-byo' : 'm-leaky', 'TERMINATE');
      assert.equal(ended.status, 200, JSON.stringify(ended.body).slice(0, 600));
    }
  });

  it('a guard killed alone takes its server with it, and the worker is started again', async () => {
    const operation = (type: string) =>
      postJson(`${t.url}/inference_router/`, {
        job_id: 'g1',
        model: 'm-byo',
        dataset: 'ds-550',
        operation_type: type,
      });
    const created = await operation('DEPLOY_CREATE');
    assert.equal(created.status, 200, JSON.stringify(created.body).slice(0, 600));
    const workerOf = async () => (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'g1');
    const before = (await workerOf())!;
    const guard = Number(/^pid:(\d+):/.exec(before.id)![1]);
    const [server] = (await readFile(`/proc/${guard}/task/${guard}/children`, 'utf8')).trim().split(' ');
    assert.ok(server, `the guard ${guard} started the server`);
    const serverStart = await processStartTime(Number(server));
    process.kill(guard, 'SIGKILL');
    const deadline = Date.now() + 20_000;
    while ((await processStartTime(Number(server))) === serverStart) {
      assert.ok(Date.now() < deadline, `the server ${server} outlived its guard ${guard}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // The reconciler starts the worker again, guard and server, and the job serves.
    const body = {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
    };
    for (;;) {
      const after = await workerOf();
      if (after?.running && after.id !== before.id) {
        const routed = await postJson(`${t.url}/v2/models/g1/infer`, body);
        if (routed.status === 200) break;
      }
      assert.ok(Date.now() < deadline, `job g1 not served again: ${JSON.stringify(after)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const ended = await operation('TERMINATE');
    assert.equal(ended.status, 200, JSON.stringify(ended.body).slice(0, 600));
  });
});
