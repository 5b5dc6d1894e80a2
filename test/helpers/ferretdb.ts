/**
 * A real MongoDB wire-protocol server for the MongoDB store tests: FerretDB on SQLite,
 * built by scripts/ferretdb.sh, started on a free loopback port. If it cannot be built
 * or started the tests fail: a missing service is a failure, not a skip.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MongoClient } from 'mongodb';
import { REPO_ROOT } from './paths.js';
import { freePort } from './ports.js';

/** Where scripts/ferretdb.sh builds it: outside the checkout, shared by every clone. */
const BINARY = path.join(
  process.env.MODELDOCK_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'modeldock'),
  'ferretdb',
  'ferretdb',
);

export interface FerretDb {
  url: (database: string) => string;
  dataDir: string;
  stop(): Promise<void>;
  /** Start again on the same port and data directory. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

function ensureBuilt(): void {
  if (existsSync(BINARY)) return;
  execFileSync('bash', [path.join(REPO_ROOT, 'scripts/ferretdb.sh'), 'build'], { stdio: 'inherit' });
}

async function waitUntilAnswering(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let interval = 20; ; interval = Math.min(interval * 2, 250)) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with code ${child.exitCode}`);
    const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { serverSelectionTimeoutMS: 500 });
    try {
      await client.db('admin').command({ ping: 1 });
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`FerretDB did not answer on ${port}: ${String(error)}`);
    } finally {
      await client.close().catch(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

export async function startFerretDb(): Promise<FerretDb> {
  ensureBuilt();
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-ferretdb-'));
  let child: ChildProcess | undefined;
  let stderr = '';

  const launch = async () => {
    child = spawn(
      BINARY,
      [
        '--handler=sqlite',
        `--sqlite-url=file:${dataDir}/`,
        `--listen-addr=127.0.0.1:${port}`,
        '--telemetry=disable',
        '--log-level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    try {
      await waitUntilAnswering(port, child);
    } catch (error) {
      child.kill('SIGKILL');
      throw new Error(`${(error as Error).message}\n${stderr}`);
    }
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };

  await launch();
  return {
    url: (database) => `mongodb://127.0.0.1:${port}/${database}`,
    dataDir,
    stop,
    restart: launch,
    close: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
