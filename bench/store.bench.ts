/**
 * The state store on the common paths, SQLite vs MongoDB (FerretDB 1.24.2 on SQLite,
 * the wire-protocol server available here), in one run: lookup of a job's server,
 * a conditional state transition, an operation record (insert + finish), and the store
 * calls one DEPLOY_CREATE makes. Sequential calls, as the router makes them per job.
 * SQLite twice: with the default synchronous=FULL (every commit fsynced, the durability
 * contract of docs/database.md) and with NORMAL, the setting before it, on the same disk
 * (a directory beside the results, not a tmpfs, so fsync costs what it costs).
 *
 * Bounded: each path stops after BENCH_OPS calls (default 2000) or BENCH_SECONDS seconds
 * (default 20), whichever comes first; `n` in the results says how many were measured.
 *
 *   node --import tsx bench/store.bench.ts
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { MongoStore } from '../src/store/mongodb/mongodb-store.js';
import { formatServerId } from '../src/store/server-id.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { OperationRecord } from '../src/store/records.js';
import type { Store } from '../src/store/store.js';
import { startFerretDb } from '../test/helpers/ferretdb.js';
import { machine, ms, summarize, table, writeResult } from './lib/stats.js';

const OPS = Number(process.env.BENCH_OPS ?? 2000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);

async function measure(count: number, work: (i: number) => Promise<unknown>) {
  for (let i = 0; i < Math.min(100, count); i++) await work(-1 - i); // warm-up
  const samples: number[] = [];
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  for (let i = 0; i < count && performance.now() < deadline; i++) {
    const t0 = performance.now();
    await work(i);
    samples.push(performance.now() - t0);
  }
  const seconds = (performance.now() - started) / 1000;
  return { ...summarize(samples), ops_per_s: Math.round(samples.length / seconds) };
}

async function newServer(store: Store, jobId: string) {
  const number = await store.allocateServerNumber();
  return store.insertServer({
    serverId: formatServerId(number),
    number,
    jobId,
    model: 'm-131',
    dataset: 'ds-550',
    kind: 'job',
    placement: 'dedicated',
    state: 'creating',
    reason: null,
    runtime: 'docker',
    workerName: `bench-${formatServerId(number)}`,
    workerId: null,
    endpoint: null,
    restarts: 0,
    loadedAt: null,
    lastUsedAt: null,
    terminatedAt: null,
  });
}

/** A freshly begun operation record, as the lifecycle writes it before acting. */
function runningOperation(
  operationId: string,
  type: OperationRecord['type'],
  jobId: string,
  serverId: string | null,
): OperationRecord {
  return {
    operationId,
    type,
    jobId,
    serverId,
    status: 'running',
    reason: 'request',
    caller: 'key-0123456789ab',
    steps: [],
    warnings: [],
    error: null,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    durationMs: null,
  };
}

async function benchStore(store: Store) {
  await store.init();
  for (let j = 0; j < 100; j++) {
    await store.ensureJob({ jobId: `job${j}`, model: 'm-131', dataset: 'ds-550' });
    await newServer(store, `job${j}`);
  }
  let server = await newServer(store, 'hot');
  const results = {
    lookup_by_job: await measure(OPS, (i) => store.currentServer(`job${Math.abs(i) % 100}`)),
    state_transition: await measure(OPS, async (i) => {
      server = await store.updateServer(server.serverId, server.version, {
        state: i % 2 ? 'ready' : 'unloaded',
      });
    }),
    operation_record: await measure(OPS, async (i) => {
      const id = `op-bench-${i}-${Math.random()}`;
      await store.insertOperation(runningOperation(id, 'DEPLOY_LOAD', 'hot', server.serverId));
      await store.updateOperation(id, {
        status: 'succeeded',
        steps: [{ name: 'load', startedAt: new Date().toISOString(), durationMs: 1.5 }],
        finishedAt: new Date().toISOString(),
        durationMs: 2,
      });
    }),
    // The store calls of one DEPLOY_CREATE of a new job, in the order src/lifecycle makes
    // them (12 calls): getJob, currentServer, insertOperation, ensureJob,
    // allocateServerNumber, insertServer, updateOperation (attach), updateServer ×3
    // (creating, loading, ready), updateOperation (finish).
    deploy_create_calls: await measure(Math.min(OPS, 300), async (i) => {
      const jobId = `create${i}-${Math.random()}`;
      await store.getJob(jobId);
      await store.currentServer(jobId);
      const id = `op-create-${i}-${Math.random()}`;
      await store.insertOperation(runningOperation(id, 'DEPLOY_CREATE', jobId, null));
      await store.ensureJob({ jobId, model: 'm-131', dataset: 'ds-550' });
      let s = await newServer(store, jobId);
      await store.updateOperation(id, { serverId: s.serverId });
      s = await store.updateServer(s.serverId, s.version, {
        state: 'creating',
        endpoint: null,
        workerId: null,
      });
      s = await store.updateServer(s.serverId, s.version, {
        state: 'loading',
        workerId: 'c0ffee',
        endpoint: 'http://127.0.0.1:1',
        reason: null,
      });
      const now = new Date().toISOString();
      s = await store.updateServer(s.serverId, s.version, { state: 'ready', loadedAt: now, lastUsedAt: now });
      await store.updateOperation(id, {
        status: 'succeeded',
        steps: [{ name: 'create', startedAt: now, durationMs: 60 }],
        warnings: [],
        error: null,
        finishedAt: new Date().toISOString(),
        durationMs: 1,
      });
    }),
  };
  await store.close();
  return results;
}

/** The file system the SQLite files live on (`df -T`), so the result says whether fsync was real. */
async function filesystemOf(dir: string): Promise<string> {
  const { stdout } = await promisify(execFile)('df', ['-T', dir]);
  return stdout.trim().split('\n').at(-1)?.split(/\s+/)[1] ?? 'unknown';
}

async function main() {
  // Beside the results (gitignored), not in os.tmpdir(): /tmp may be a tmpfs, where fsync is free.
  const scratch = path.join(import.meta.dirname, 'results', 'tmp');
  await mkdir(scratch, { recursive: true });
  const dir = await mkdtemp(path.join(scratch, 'store-bench-'));
  const ferret = await startFerretDb();
  try {
    const sqlite = await benchStore(new SqliteStore(path.join(dir, 'bench.db')));
    const sqliteNormal = await benchStore(
      new SqliteStore(path.join(dir, 'normal.db'), { synchronous: 'normal' }),
    );
    const mongodb = await benchStore(new MongoStore(ferret.url('modeldock_bench')));
    const file = writeResult('store', {
      machine: machine(),
      ops: OPS,
      seconds_per_path: SECONDS,
      filesystem: await filesystemOf(dir),
      sqlite,
      sqlite_normal: sqliteNormal,
      mongodb_ferretdb: mongodb,
    });
    const rows = (Object.keys(sqlite) as (keyof typeof sqlite)[]).map((k) => [
      k,
      `${sqlite[k].ops_per_s}/s, p50 ${ms(sqlite[k].median)}, p99 ${ms(sqlite[k].p99)}`,
      `${sqliteNormal[k].ops_per_s}/s, p50 ${ms(sqliteNormal[k].median)}, p99 ${ms(sqliteNormal[k].p99)}`,
      `${mongodb[k].ops_per_s}/s, p50 ${ms(mongodb[k].median)}, p99 ${ms(mongodb[k].p99)}`,
    ]);
    console.log(table(['path', 'SQLite (FULL)', 'SQLite (NORMAL)', 'MongoDB (FerretDB)'], rows));
    console.log(`\nraw results: ${file}`);
  } finally {
    await ferret.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
