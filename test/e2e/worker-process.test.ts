/**
 * The worker as a plain process started from the repository, as the process runtime
 * starts it (`node --import tsx src/worker/main.ts` with the MODELDOCK_* environment):
 * it serves m-131 from ./models and ./datasets, and stops cleanly on SIGTERM, releasing
 * what it loaded.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { DIGITS } from '../helpers/fixtures.js';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';

describe('worker as a plain process', () => {
  const workers = new WorkerClient();
  let child: ChildProcess | undefined;
  after(async () => {
    await workers.close();
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('serves m-131 and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    let output = '';
    child = spawn(process.execPath, ['--import', 'tsx', 'src/worker/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH,
        MODELDOCK_WORKER_PORT: String(port),
        MODELDOCK_WORKER_HOST: '127.0.0.1',
        MODELDOCK_MODELS_DIR: MODELS_DIR,
        MODELDOCK_DATASETS_DIR: DATASETS_DIR,
        MODELDOCK_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
    const exited = once(child, 'exit');
    const endpoint = `http://127.0.0.1:${port}`;
    await workers.waitUntilReady(endpoint, {
      timeoutMs: 30_000,
      isAlive: async () => child!.exitCode === null,
    });

    await workers.load(endpoint, 'job-1', 'm-131');
    const record = DIGITS[1]!;
    const answer = (await workers.infer(endpoint, 'job-1', {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
      outputs: [{ name: 'label' }],
    })) as { outputs: { data: number[] }[] };
    assert.deepEqual(answer.outputs[0]!.data, [record.label]);
    const batch = await workers.batch(endpoint, 'job-1', 'ds-550');
    assert.equal((batch as unknown as { correct: number }).correct, 527);

    child.kill('SIGTERM');
    const [code, signal] = (await exited) as [number | null, string | null];
    assert.equal(signal, null, output);
    assert.equal(code, 0, output);
    assert.match(output, /worker stopping/);
    assert.doesNotMatch(output, /"level":(50|60)/, 'no error logged on the way down');
  });

  it('refuses to start on a bad setting with one clear line and exit code 1', async () => {
    const bad = spawn(process.execPath, ['--import', 'tsx', 'src/worker/main.ts'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, MODELDOCK_WORKER_PORT: 'eighty' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    bad.stdout!.on('data', (chunk: Buffer) => (output += chunk));
    bad.stderr!.on('data', (chunk: Buffer) => (output += chunk));
    const [code] = (await once(bad, 'exit')) as [number | null];
    assert.equal(code, 1);
    assert.match(output, /worker cannot start: MODELDOCK_WORKER_PORT must be a non-negative integer/);
    assert.doesNotMatch(output, /\n\s+at /, 'no stack trace');
  });
});
