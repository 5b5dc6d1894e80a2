/**
 * NVIDIA Triton as a worker on the process runtime: the built-in `triton` entry runs
 * `tritonserver` from the PATH, here the nvidia-pytriton wheel's server behind
 * scripts/tritonserver.sh (the tests' triton-venv, scripts/python-venv.sh), in explicit
 * model-control mode. It serves m-133, the example store's Python-backend model. The
 * original five requests (model id changed) work on it, TEMP runs ds-550 through its
 * infer calls and reports the accuracy training measured, and NVIDIA's tritonclient gets
 * the same predictions through the router, over HTTP and gRPC, as from Triton directly.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { LABELS, type WorkerInfo } from '../../src/runtime/runtime.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { MODELS_DIR } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { tritonServerDir } from '../helpers/python.js';
import { getJson, type TestRouter } from '../helpers/router.js';
import { assertBadTensorRefused, assertTritonclientAgrees } from '../helpers/triton.js';
import {
  assertDeployedOn,
  assertLoadUnloadTerminate,
  assertRoutedAsDirect,
  assertTempAsTrained,
  startScratchRouter,
  type ScratchRouter,
} from '../helpers/scratch-router.js';

const run = promisify(execFile);
const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-133"'));

/** A worker's pid (process runtime ids are `pid:<pid>:<start time>`). */
function pidOf(worker: WorkerInfo): string {
  const pid = /^pid:(\d+):/.exec(worker.id)?.[1];
  assert.ok(pid, `a process worker's id names its pid: ${worker.id}`);
  return pid;
}

/** Triton's own pid: the worker's process is the guard in front of it, which started it. */
async function serverPidOf(worker: WorkerInfo): Promise<string> {
  const guard = pidOf(worker);
  const [server] = (await readFile(`/proc/${guard}/task/${guard}/children`, 'utf8')).trim().split(' ');
  assert.ok(server, `the guard ${guard} has started the server`);
  return server;
}

/** The Python backend's shared-memory regions of the Triton with this pid (scripts/tritonserver.sh names them). */
async function shmRegionsOf(pid: string): Promise<string[]> {
  return (await readdir('/dev/shm')).filter((name) => name.startsWith(`modeldock-triton-${pid}-`));
}

/** The gRPC port the router gave this Triton, read from its command line. */
async function directGrpcPort(worker: WorkerInfo): Promise<number> {
  const args = (await readFile(`/proc/${pidOf(worker)}/cmdline`, 'utf8')).split('\0');
  const port = args.find((arg) => arg.startsWith('--grpc-port='))?.slice('--grpc-port='.length);
  assert.ok(port, `tritonserver was given a gRPC port: ${args.join(' ')}`);
  return Number(port);
}

describe('Triton as a worker (process runtime)', { timeout: 300_000 }, () => {
  const originalPath = process.env.PATH;
  let scratch: ScratchRouter;
  let t: TestRouter;
  let routerGrpc: string;
  /** A region a killed Triton left behind: the next Triton to start removes it. */
  let leftover: string;
  let jobPid: string;

  before(async () => {
    const gone = await run(process.execPath, ['-e', 'console.log(process.pid)']);
    leftover = `/dev/shm/modeldock-triton-${gone.stdout.trim()}-left-by-a-killed-server`;
    await writeFile(leftover, Buffer.alloc(4096));
    // The built-in entry runs `tritonserver` from the PATH, as an operator's machine would.
    process.env.PATH = `${tritonServerDir()}${path.delimiter}${originalPath}`;
    const grpcPort = await freePort();
    routerGrpc = `127.0.0.1:${grpcPort}`;
    scratch = await startScratchRouter(
      'trt',
      async ({ modelsDir }) => {
        await cp(path.join(MODELS_DIR, 'm-133'), path.join(modelsDir, 'm-133'), { recursive: true });
      },
      { MODELDOCK_GRPC_PORT: String(grpcPort) },
    );
    t = scratch.t;
  });
  after(async () => {
    await scratch?.cleanup();
    process.env.PATH = originalPath;
  });

  it('DEPLOY_CREATE starts Triton and loads m-133 under the job name; tritonclient gets through the router what Triton answers', async () => {
    const worker = await assertDeployedOn(t, requests[0]!, 'triton');
    jobPid = await serverPidOf(worker);
    assert.ok(
      (await shmRegionsOf(jobPid)).length > 0,
      'the Python backend keeps its tensors in named regions',
    );
    await assert.rejects(
      readFile(leftover),
      { code: 'ENOENT' },
      "Triton's start removed a dead server's region",
    );

    const direct = new URL(worker.endpoint!).host;
    const directGrpc = `grpc=127.0.0.1:${await directGrpcPort(worker)}`;
    await assertTritonclientAgrees(
      'a1',
      {
        routerBinary: `http-binary=${new URL(t.url).host}`,
        routerJson: `http-json=${new URL(t.url).host}`,
        routerGrpc: `grpc=${routerGrpc}`,
        directBinary: `http-binary=${direct}`,
        directJson: `http-json=${direct}`,
        directGrpc,
      },
      directGrpc,
      t.runtime.workerSecret!(worker.endpoint!)!,
    );
  });

  it("a tensor that does not fit m-133 gets Triton's 400 through the router, and the job keeps serving", async () => {
    await assertBadTensorRefused(t);
  });

  it('a restarted router adopts the running Triton: the job stays ready on the same process, inference still reaches it', async () => {
    const before = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
    t = await scratch.restart();
    const adopted = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1');
    assert.equal(adopted?.id, before.id, 'the same tritonserver process, not a new one');
    const job = await getJson(`${t.url}/v1/jobs/a1`);
    assert.equal(job.status, 200, JSON.stringify(job.body));
    assert.equal(job.body.state, 'ready');
    for (const i of [3, 4]) await assertRoutedAsDirect(t, adopted!.endpoint!, 'a1', i);
    // Adoption started no second server.
    assert.equal((await t.runtime.list()).length, 1);
  });

  it('DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE drive Triton through the repository extension', async () => {
    await assertLoadUnloadTerminate(t, requests.slice(1, 4));
  });

  it('TEMP runs ds-550 through its infer calls and reports the accuracy training measured', async () => {
    await assertTempAsTrained(t, requests[4]!, 'm-133');
    assert.deepEqual(await t.runtime.list(), []);
    // The job's Triton, stopped by TERMINATE (killed if it outlasted the stop's grace),
    // left no shared memory behind: it removed its own, or the TEMP server's start did.
    assert.deepEqual(await shmRegionsOf(jobPid), []);
  });
});
