/**
 * The embedded default store: one SQLite file (WAL mode), through better-sqlite3.
 * Several processes may share the file: numbers are claimed inside an IMMEDIATE
 * transaction and every server update is conditional on the version it read.
 */
import Database from 'better-sqlite3';
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  ConflictError,
  ModeldockError,
  NotFoundError,
  StaleVersionError,
  StoreUnavailableError,
  errorMessage,
} from '../../errors.js';
import type { JobRecord, OperationRecord, ServerRecord } from '../../store/records.js';
import {
  newJobReplicas,
  type JobPatch,
  type NewJob,
  type OperationFilter,
  type OperationPatch,
  type ServerFilter,
  type ServerPatch,
  type Store,
} from '../store.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';

type Row = Record<string, unknown>;

const SERVER_COLUMNS: Record<keyof ServerRecord, string> = {
  serverId: 'server_id',
  number: 'number',
  jobId: 'job_id',
  model: 'model',
  dataset: 'dataset',
  kind: 'kind',
  placement: 'placement',
  state: 'state',
  reason: 'reason',
  runtime: 'runtime',
  workerName: 'worker_name',
  workerId: 'worker_id',
  endpoint: 'endpoint',
  version: 'version',
  restarts: 'restarts',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  loadedAt: 'loaded_at',
  lastUsedAt: 'last_used_at',
  terminatedAt: 'terminated_at',
};

/** A transaction under way on the connection: whose it is, and when it is over. */
interface OpenTransaction {
  owner: object;
  done: Promise<void>;
}

/** Prepared statements kept at most (SqliteStore.statement). */
const STATEMENT_CACHE_SIZE = 256;

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private db: Database.Database | undefined;
  /** The transaction under way (one at a time: the connection is one). */
  private open: OpenTransaction | undefined;
  /** Which transaction the calling code runs in: its calls join it, every other call waits for it. */
  private readonly transactionOf = new AsyncLocalStorage<object>();

  /** Prepared statements of the open connection, by their text (statement()). */
  private readonly statements = new Map<string, Database.Statement>();

  private readonly busyTimeoutMs: number;
  private readonly synchronous: 'full' | 'normal';

  /**
   * `file` is a path (parent directories are created) or `:memory:`. `busyTimeoutMs` is
   * how long a call waits for another process's write lock before it fails with
   * StoreUnavailableError. `synchronous` is `full` unless told: every commit's WAL frames
   * are fsynced before the call returns, so what a call acknowledged survives power loss;
   * `normal` syncs only at checkpoints (survives a crash of the process, not of the
   * machine) and exists to show the difference (docs/database.md, the power-loss test).
   */
  constructor(
    private readonly file: string,
    options: { busyTimeoutMs?: number; synchronous?: 'full' | 'normal' } = {},
  ) {
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
    this.synchronous = options.synchronous ?? 'full';
  }

  /**
   * A consistent copy of the whole database in `destination` (SQLite's online backup: the
   * router may keep writing meanwhile). The copy is one self-contained file.
   */
  async backup(destination: string): Promise<void> {
    const db = this.handle();
    try {
      await db.backup(destination);
    } catch (error) {
      throw new StoreUnavailableError(
        `backup of ${this.file} to ${destination} failed: ${errorMessage(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  /**
   * Replace the database at `file` by the backup in `source`, through SQLite's backup API
   * into `file` (so its WAL is handled by SQLite, never left to replay over the copy).
   * The backup must be a modeldock database this version can read. The router should be
   * stopped; at its next start it adopts the workers the backup does not know.
   */
  static async restore(source: string, file: string): Promise<void> {
    let backup: Database.Database | undefined;
    try {
      backup = new Database(source, { readonly: true, fileMustExist: true });
      const row = backup.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
        { value: string } | undefined;
      if (!row) throw new Error('not a modeldock database (no schema version)');
      if (Number(row.value) > SCHEMA_VERSION) {
        throw new Error(`schema version ${row.value} is newer than this modeldock (${SCHEMA_VERSION})`);
      }
      mkdirSync(path.dirname(file), { recursive: true });
      await backup.backup(file);
    } catch (error) {
      throw new StoreUnavailableError(`cannot restore ${file} from ${source}: ${errorMessage(error)}`, {
        cause: error,
      });
    } finally {
      backup?.close();
    }
  }

  /** The connection's `synchronous` setting as SQLite reports it (1 = NORMAL, 2 = FULL). */
  synchronousLevel(): number {
    return this.guard(() => this.handle().pragma('synchronous', { simple: true }) as number);
  }

  async init(): Promise<void> {
    if (this.db) return;
    this.guard(() => {
      if (this.file !== ':memory:') mkdirSync(path.dirname(this.file), { recursive: true });
      const db = new Database(this.file);
      try {
        this.migrate(db);
      } catch (error) {
        db.close();
        throw error;
      }
      this.db = db;
    });
  }

  async close(): Promise<void> {
    this.statements.clear();
    this.db?.close();
    this.db = undefined;
  }

  async ping(): Promise<void> {
    this.guard(() => this.statement('SELECT 1').get());
  }

  /**
   * One SQLite transaction (BEGIN IMMEDIATE … COMMIT): every call `work` makes on this
   * store is committed, and fsynced, once, at its end. The connection is one, so while it
   * is open the calls of everyone else wait for it (they would land in it otherwise); the
   * code that holds it runs only store calls. Whatever `work` wrote is committed also when
   * it throws, as it would have been one call at a time (the MongoDB store cannot undo
   * either); a commit that fails is rolled back and throws StoreUnavailableError.
   */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    if (this.open && this.transactionOf.getStore() === this.open.owner) return work();
    // Checked again after every wait, in the same tick as it is taken.
    while (this.open) await this.open.done;
    const owner = {};
    let finished!: () => void;
    this.open = { owner, done: new Promise<void>((resolve) => (finished = resolve)) };
    try {
      this.guard(() => this.handle().exec('BEGIN IMMEDIATE'));
      let outcome: { value: T } | { error: unknown };
      try {
        outcome = { value: await this.transactionOf.run(owner, work) };
      } catch (error) {
        outcome = { error };
      }
      this.guard(() => {
        const db = this.handle();
        try {
          db.exec('COMMIT');
        } catch (error) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw error;
        }
      });
      if ('error' in outcome) throw outcome.error;
      return outcome.value;
    } finally {
      this.open = undefined;
      finished();
    }
  }

  /**
   * One call of the store's API: once no transaction but the caller's own is under way,
   * `work` runs (guarded) in the same tick as that was checked, so no transaction opens
   * in between.
   */
  private async call<T>(work: () => T): Promise<T> {
    while (this.open && this.transactionOf.getStore() !== this.open.owner) await this.open.done;
    return this.guard(work);
  }

  async ensureJob(job: NewJob): Promise<JobRecord> {
    return this.call(() => {
      const now = new Date().toISOString();
      const { replicas, desiredReplicas, scaleTarget, placement } = newJobReplicas(job);
      this.statement(
        `INSERT INTO jobs (job_id, model, dataset, replicas_min, replicas_max, desired_replicas, scale_target,
             placement, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (job_id) DO NOTHING`,
      ).run(
        job.jobId,
        job.model,
        job.dataset,
        replicas.min,
        replicas.max,
        desiredReplicas,
        scaleTarget,
        placement,
        now,
        now,
      );
      return this.readJob(job.jobId)!;
    });
  }

  async updateJob(jobId: string, patch: JobPatch): Promise<JobRecord> {
    return this.call(() => {
      const sets: string[] = [];
      const params: unknown[] = [];
      const set = (column: string, value: unknown) => {
        sets.push(`${column} = ?`);
        params.push(value);
      };
      if (patch.model !== undefined) set('model', patch.model);
      if (patch.dataset !== undefined) set('dataset', patch.dataset);
      if (patch.replicas !== undefined) {
        set('replicas_min', patch.replicas.min);
        set('replicas_max', patch.replicas.max);
      }
      if (patch.desiredReplicas !== undefined) set('desired_replicas', patch.desiredReplicas);
      if (patch.scaleTarget !== undefined) set('scale_target', patch.scaleTarget);
      if (patch.placement !== undefined) set('placement', patch.placement);
      set('updated_at', new Date().toISOString());
      const result = this.statement(`UPDATE jobs SET ${sets.join(', ')} WHERE job_id = ?`).run(
        ...params,
        jobId,
      );
      if (result.changes === 0) throw new NotFoundError(`job ${jobId} not found`);
      return this.readJob(jobId)!;
    });
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    return this.call(() => this.readJob(jobId));
  }

  async listJobs(): Promise<JobRecord[]> {
    return this.call(() =>
      (this.statement('SELECT * FROM jobs ORDER BY created_at, job_id').all() as Row[]).map(toJob),
    );
  }

  async reserveServerNumber(number: number): Promise<void> {
    await this.call(() =>
      this.statement('INSERT OR IGNORE INTO server_numbers (number, claimed_at) VALUES (?, ?)').run(
        number,
        new Date().toISOString(),
      ),
    );
  }

  async allocateServerNumber(): Promise<number> {
    return this.call(() => {
      const db = this.handle();
      const claim = db.transaction(() => {
        const row = db.prepare('SELECT COALESCE(MAX(number), 0) + 1 AS next FROM server_numbers').get() as {
          next: number;
        };
        db.prepare('INSERT INTO server_numbers (number, claimed_at) VALUES (?, ?)').run(
          row.next,
          new Date().toISOString(),
        );
        return row.next;
      });
      // IMMEDIATE takes the write lock before reading, so two processes never read the same max.
      return claim.immediate();
    });
  }

  async insertServer(
    server: Omit<ServerRecord, 'version' | 'createdAt' | 'updatedAt'>,
  ): Promise<ServerRecord> {
    return this.call(() => {
      const now = new Date().toISOString();
      const record: ServerRecord = { ...server, version: 1, createdAt: now, updatedAt: now };
      const columns = Object.values(SERVER_COLUMNS);
      try {
        this.statement(
          `INSERT INTO servers (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
        ).run(...(Object.keys(SERVER_COLUMNS) as (keyof ServerRecord)[]).map((key) => record[key]));
      } catch (error) {
        if ((error as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) {
          throw new ConflictError(`server ${server.serverId} already exists`, { cause: error });
        }
        throw error;
      }
      return record;
    });
  }

  async getServer(serverId: string): Promise<ServerRecord | undefined> {
    return this.call(() => this.readServer(serverId));
  }

  async updateServer(serverId: string, expectedVersion: number, patch: ServerPatch): Promise<ServerRecord> {
    return this.call(() => {
      const entries = Object.entries(patch).filter(
        ([key, value]) => value !== undefined && key in SERVER_COLUMNS,
      );
      const sets = entries.map(([key]) => `${SERVER_COLUMNS[key as keyof ServerRecord]} = ?`);
      const result = this.statement(
        `UPDATE servers SET ${[...sets, 'version = version + 1', 'updated_at = ?'].join(', ')}
           WHERE server_id = ? AND version = ?`,
      ).run(...entries.map(([, value]) => value), new Date().toISOString(), serverId, expectedVersion);
      if (result.changes === 0) {
        const current = this.readServer(serverId);
        if (!current) throw new NotFoundError(`server ${serverId} not found`);
        throw new StaleVersionError(
          `server ${serverId} changed meanwhile (version ${current.version}, expected ${expectedVersion})`,
        );
      }
      return this.readServer(serverId)!;
    });
  }

  async listServers(filter: ServerFilter = {}): Promise<ServerRecord[]> {
    return this.call(() => {
      const where: string[] = [];
      const params: unknown[] = [];
      if (filter.jobId !== undefined) {
        where.push('job_id = ?');
        params.push(filter.jobId);
      }
      if (filter.kind !== undefined) {
        where.push('kind = ?');
        params.push(filter.kind);
      }
      if (filter.states !== undefined) {
        if (filter.states.length === 0) return [];
        where.push(`state IN (${filter.states.map(() => '?').join(', ')})`);
        params.push(...filter.states);
      }
      const sql = `SELECT * FROM servers ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY number`;
      return (this.statement(sql).all(...params) as Row[]).map(toServer);
    });
  }

  async currentServer(jobId: string): Promise<ServerRecord | undefined> {
    return this.call(() => {
      const row = this.statement(
        "SELECT * FROM servers WHERE job_id = ? AND kind = 'job' ORDER BY number DESC LIMIT 1",
      ).get(jobId) as Row | undefined;
      return row ? toServer(row) : undefined;
    });
  }

  async insertOperation(op: OperationRecord): Promise<void> {
    await this.call(() => {
      try {
        this.statement(
          `INSERT INTO operations (operation_id, type, job_id, server_id, status, reason, caller, steps, warnings,
               error, started_at, finished_at, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          op.operationId,
          op.type,
          op.jobId,
          op.serverId,
          op.status,
          op.reason,
          op.caller,
          JSON.stringify(op.steps),
          JSON.stringify(op.warnings),
          op.error === null ? null : JSON.stringify(op.error),
          op.startedAt,
          op.finishedAt,
          op.durationMs,
        );
      } catch (error) {
        if ((error as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT')) {
          throw new ConflictError(`operation ${op.operationId} already exists`, { cause: error });
        }
        throw error;
      }
    });
  }

  async updateOperation(operationId: string, patch: OperationPatch): Promise<OperationRecord> {
    return this.call(() => {
      const columns: Record<string, (value: unknown) => unknown> = {
        serverId: (v) => v,
        status: (v) => v,
        reason: (v) => v,
        steps: (v) => JSON.stringify(v),
        warnings: (v) => JSON.stringify(v),
        error: (v) => (v === null ? null : JSON.stringify(v)),
        finishedAt: (v) => v,
        durationMs: (v) => v,
      };
      const names: Record<string, string> = {
        serverId: 'server_id',
        finishedAt: 'finished_at',
        durationMs: 'duration_ms',
      };
      const entries = Object.entries(patch).filter(([key, value]) => value !== undefined && key in columns);
      if (entries.length > 0) {
        const result = this.statement(
          `UPDATE operations SET ${entries.map(([key]) => `${names[key] ?? key} = ?`).join(', ')} WHERE operation_id = ?`,
        ).run(...entries.map(([key, value]) => columns[key]!(value)), operationId);
        if (result.changes === 0) throw new NotFoundError(`operation ${operationId} not found`);
      }
      const updated = this.readOperation(operationId);
      if (!updated) throw new NotFoundError(`operation ${operationId} not found`);
      return updated;
    });
  }

  async getOperation(operationId: string): Promise<OperationRecord | undefined> {
    return this.call(() => this.readOperation(operationId));
  }

  async listOperations(filter: OperationFilter = {}): Promise<OperationRecord[]> {
    return this.call(() => {
      const where: string[] = [];
      const params: unknown[] = [];
      for (const [key, column] of [
        ['jobId', 'job_id'],
        ['serverId', 'server_id'],
        ['type', 'type'],
        ['status', 'status'],
      ] as const) {
        const value = filter[key];
        if (value !== undefined) {
          where.push(`${column} = ?`);
          params.push(value);
        }
      }
      const sql = `SELECT * FROM operations ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY seq DESC LIMIT ?`;
      return (this.statement(sql).all(...params, filter.limit ?? 100) as Row[]).map(toOperation);
    });
  }

  // ------------------------------------------------------------------ internals

  /** Settings of this connection, then the migrations the file lacks, under the write lock. */
  private migrate(db: Database.Database): void {
    // First, so that even switching to WAL waits for another process instead of failing.
    db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
    db.pragma('journal_mode = WAL');
    // FULL: in WAL mode the log is fsynced at every commit, so a call returns only once its
    // change is on stable storage (NORMAL would leave the last commits to the next checkpoint).
    db.pragma(`synchronous = ${this.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    const migrate = db.transaction(() => {
      const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
        { value: string } | undefined;
      const current = row ? Number(row.value) : 0;
      if (current > SCHEMA_VERSION) {
        throw new StoreUnavailableError(
          `the database ${this.file} has schema version ${current}, newer than this modeldock (${SCHEMA_VERSION})`,
        );
      }
      for (let version = current + 1; version <= SCHEMA_VERSION; version++) db.exec(MIGRATIONS[version - 1]!);
      db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)").run(
        String(SCHEMA_VERSION),
      );
    });
    migrate.immediate();
  }

  private handle(): Database.Database {
    if (!this.db) throw new StoreUnavailableError('the SQLite store is not open');
    return this.db;
  }

  /**
   * The connection's prepared statement for `sql`, prepared once: preparing every call's
   * statement anew took a tenth of the router's time at 10,000 jobs (density bench, CPU
   * profile). The texts are few (a statement's text varies only with which fields a
   * patch or filter names); past STATEMENT_CACHE_SIZE the cache starts over.
   */
  private statement(sql: string): Database.Statement {
    let prepared = this.statements.get(sql);
    if (!prepared) {
      prepared = this.handle().prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_SIZE) this.statements.clear();
      this.statements.set(sql, prepared);
    }
    return prepared;
  }

  private readJob(jobId: string): JobRecord | undefined {
    const row = this.statement('SELECT * FROM jobs WHERE job_id = ?').get(jobId) as Row | undefined;
    return row ? toJob(row) : undefined;
  }

  private readServer(serverId: string): ServerRecord | undefined {
    const row = this.statement('SELECT * FROM servers WHERE server_id = ?').get(serverId) as Row | undefined;
    return row ? toServer(row) : undefined;
  }

  private readOperation(operationId: string): OperationRecord | undefined {
    const row = this.statement('SELECT * FROM operations WHERE operation_id = ?').get(operationId) as
      Row | undefined;
    return row ? toOperation(row) : undefined;
  }

  /** Domain errors pass; SQLite failures that mean "the database is not usable" become 503s. */
  private guard<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      if (error instanceof ModeldockError) throw error;
      const code = (error as { code?: string }).code ?? '';
      // SQLITE_* codes that mean the file cannot be used now; E* are file-system errors
      // (e.g. ENOTDIR, EACCES while creating the directory); no code: the handle is closed.
      const unusable = /^SQLITE_(BUSY|LOCKED|CANTOPEN|READONLY|IOERR|FULL|CORRUPT|NOTADB|PERM)/;
      if (unusable.test(code) || /^E[A-Z]+$/.test(code) || !code) {
        throw new StoreUnavailableError(`SQLite store unavailable (${this.file}): ${errorMessage(error)}`, {
          cause: error,
        });
      }
      throw new ModeldockError('internal', `SQLite store error: ${errorMessage(error)}`, { cause: error });
    }
  }
}

function toJob(row: Row): JobRecord {
  return {
    jobId: row.job_id as string,
    model: row.model as string,
    dataset: row.dataset as string,
    replicas: { min: row.replicas_min as number, max: row.replicas_max as number },
    desiredReplicas: row.desired_replicas as number,
    scaleTarget: (row.scale_target as number | null) ?? null,
    placement: row.placement as JobRecord['placement'],
    createdAt: row.created_at as string,
    updatedAt: row.updated_at as string,
  };
}

function toServer(row: Row): ServerRecord {
  const record = {} as Record<string, unknown>;
  for (const [key, column] of Object.entries(SERVER_COLUMNS)) record[key] = row[column] ?? null;
  return record as unknown as ServerRecord;
}

function toOperation(row: Row): OperationRecord {
  return {
    operationId: row.operation_id as string,
    type: row.type as OperationRecord['type'],
    jobId: row.job_id as string,
    serverId: (row.server_id as string | null) ?? null,
    status: row.status as OperationRecord['status'],
    reason: row.reason as string,
    caller: row.caller as string,
    steps: JSON.parse(row.steps as string) as OperationRecord['steps'],
    warnings: JSON.parse(row.warnings as string) as string[],
    error: row.error ? (JSON.parse(row.error as string) as OperationRecord['error']) : null,
    startedAt: row.started_at as string,
    finishedAt: (row.finished_at as string | null) ?? null,
    durationMs: (row.duration_ms as number | null) ?? null,
  };
}
