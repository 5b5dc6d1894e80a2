/**
 * Runs the real `modeldock start` as a child process, so tests can SIGKILL it at any
 * point and start it again on the same state.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import path from 'node:path';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT } from './router.js';

export interface RouterProcess {
  url: string;
  child: ChildProcess;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * The environment of a router process of its own: its instance, a SQLite database in
 * `dataDir` (start another router on it to simulate a restart), the example store.
 */
export function ownRouterEnv(instance: string, dataDir: string): Record<string, string> {
  return {
    MODELDOCK_INSTANCE: instance,
    MODELDOCK_DATABASE: `sqlite:${path.join(dataDir, 'modeldock.db')}`,
    MODELDOCK_MODELS_DIR: MODELS_DIR,
    MODELDOCK_DATASETS_DIR: DATASETS_DIR,
    MODELDOCK_WORKER_MEMORY: '512m',
  };
}

export async function spawnRouter(
  env: Record<string, string>,
  logFile: string,
  /**
   * `source` runs src/ through tsx (tests); `compiled` runs dist/ as `npm start` does
   * (benchmarks, and tests that start it a hundred times: see compileRouter).
   */
  build: 'source' | 'compiled' = 'source',
): Promise<RouterProcess> {
  const log = createWriteStream(logFile, { flags: 'a' });
  const args =
    build === 'source'
      ? ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts'), 'start']
      : // The V8 flag `npm start` and the router image use (see package.json, router.Dockerfile).
        ['--max-semi-space-size=8', path.join(REPO_ROOT, 'dist/cli/main.js'), 'start'];
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    // gRPC only when asked for (MODELDOCK_GRPC_PORT in env): a fixed default port would collide.
    // Loopback unless the test asks for another address (MODELDOCK_HOST: '' for the default).
    env: {
      ...process.env,
      MODELDOCK_GRPC_PORT: '0',
      MODELDOCK_HOST: '127.0.0.1',
      ...env,
      // Port 0: the router binds a port the kernel picks and logs its address. A port
      // probed free beforehand could be taken (by a process worker) before the router binds it.
      MODELDOCK_PORT: '0',
      // Its address is in an info line: a quieter level asked for would hide it.
      ...(QUIETER_THAN_INFO.has(env.MODELDOCK_LOG_LEVEL ?? '') ? { MODELDOCK_LOG_LEVEL: 'info' } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // The router listens only after its start-up reconcile, so its "listening" line means "recovered".
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`router did not come up; see ${logFile}`));
    }, 60_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const address = listeningAddress(line);
      if (address === undefined) return;
      clearTimeout(timer);
      // Not closed: closing it pauses its input, and a paused stdout stops the pipe to the
      // log as well, until the router blocks writing its log.
      lines.removeAllListeners('line');
      resolve(address);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`router exited with ${code}; see ${logFile}`));
    });
  });
  return {
    url,
    child,
    kill: async (signal: NodeJS.Signals = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

const QUIETER_THAN_INFO = new Set(['warn', 'error', 'fatal', 'silent']);

/** The router's own URL from its start-up log line (pino JSON: `address` of "router listening"). */
function listeningAddress(line: string): string | undefined {
  if (!line.includes('router listening')) return undefined;
  try {
    const { address } = JSON.parse(line) as { address?: unknown };
    return typeof address === 'string' ? address : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Compile the current source into dist/ (what `npm run build` does for the router and the
 * worker, without the console), for a test that starts the router many times: a compiled
 * start skips tsx's transpiling (seconds each on a busy machine), and the process
 * runtime then runs the compiled worker too. Returns what spawnRouter takes.
 */
export async function compileRouter(): Promise<'compiled'> {
  await promisify(execFile)(
    process.execPath,
    [path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    { cwd: REPO_ROOT },
  );
  await copyFile(
    path.join(REPO_ROOT, 'src/inference-grpc/inference.proto'),
    path.join(REPO_ROOT, 'dist/inference-grpc/inference.proto'),
  );
  return 'compiled';
}
