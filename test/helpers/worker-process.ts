/**
 * The worker program started as the process runtime starts it for the router: from the
 * repository through tsx, with the environment workerSpec gives every worker (allocator
 * and V8 settings, threads, body limit), open (no secret) on a free loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { workerSpec } from '../../src/lifecycle/worker-spec.js';
import type { WorkerClient } from '../../src/runtime/worker-client.js';
import { DATASETS_DIR, REPO_ROOT } from './paths.js';
import { freePort } from './ports.js';

export async function startSpecWorker(
  workers: WorkerClient,
  name: string,
  modelsDir: string,
): Promise<{ child: ChildProcess; endpoint: string }> {
  const port = await freePort();
  const spec = workerSpec(name, {}, { memoryBytes: 1024 ** 3, nanoCpus: 1e9, pids: 128 });
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker/main.ts'], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env.PATH,
      ...spec.env,
      MODELDOCK_WORKER_SECRET: '',
      MODELDOCK_WORKER_PORT: String(port),
      MODELDOCK_WORKER_HOST: '127.0.0.1',
      MODELDOCK_WORKER_THREADS: '1',
      MODELDOCK_MODELS_DIR: modelsDir,
      MODELDOCK_DATASETS_DIR: DATASETS_DIR,
      MODELDOCK_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await workers.waitUntilReady(endpoint, {
      timeoutMs: 30_000,
      isAlive: async () => child.exitCode === null,
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return { child, endpoint };
}
