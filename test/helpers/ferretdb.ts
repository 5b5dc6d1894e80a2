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
  /**
   * The store URL for a database on this server, with `w=1`: FerretDB ignores write
   * concerns, so the store refuses it under its default `w: "majority"` (docs/database.md).
   */
  url: (database: string) => string;
  /** The URL without options: what the store refuses to start on. */
  bareUrl: (database: string) => string;
  dataDir: string;
  stop(): Promise<void>;
  /** Start again on the same port and data directory. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Asks scripts/ferretdb.sh to build: a no-op when the cached binary matches tools/ferretdb,
 * a Go build (about a minute) the first time. A failure here fails the test.
 */
function ensureBuilt(): void {
  const script = path.join(REPO_ROOT, 'scripts/ferretdb.sh');
  try {
    execFileSync('bash', [script, 'build'], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const output = [(error as { stdout?: Buffer }).stdout, (error as { stderr?: Buffer }).stderr]
      .map((b) => b?.toString() ?? '')
      .join('');
    throw new Error(
      `FerretDB (the MongoDB wire-protocol server the MongoDB store is tested against) could not be built; ` +
        `run \`bash scripts/ferretdb.sh build\` and fix what it reports:\n${output}`,
      { cause: error },
    );
  }
  if (!existsSync(BINARY)) throw new Error(`scripts/ferretdb.sh build left no binary at ${BINARY}`);
}

/** Every FerretDB this process started, killed if the process exits without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

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
    const started = spawn(
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
    child = started;
    running.add(started);
    started.once('exit', () => running.delete(started));
    started.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    try {
      await waitUntilAnswering(port, started);
    } catch (error) {
      started.kill('SIGKILL');
      throw new Error(`${(error as Error).message}\n${stderr}`);
    }
  };
  const stop = async () => {
    const stopping = child;
    child = undefined;
    if (!stopping || stopping.exitCode !== null || stopping.signalCode !== null) return;
    const exited = new Promise((resolve) => stopping.once('exit', resolve));
    stopping.kill('SIGTERM');
    // A FerretDB that does not stop within 5 s is killed: a test never hangs on it.
    const kill = setTimeout(() => stopping.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(kill);
  };

  await launch();
  return {
    url: (database) => `mongodb://127.0.0.1:${port}/${database}?w=1`,
    bareUrl: (database) => `mongodb://127.0.0.1:${port}/${database}`,
    dataDir,
    stop,
    restart: launch,
    close: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
