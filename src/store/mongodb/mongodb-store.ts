/**
 * The MongoDB store (official driver), for the original system's deployments.
 *
 * Correct on servers without transactions, change streams, TTL indexes or an atomic
 * findAndModify (FerretDB): the only primitive it relies on is that inserting a
 * document whose `_id` already exists fails. Server numbers are claimed by inserting
 * `{_id: n}` into `server_numbers`; a server's next version is claimed by inserting
 * `{_id: "<server_id>#<version>"}` into `server_versions` before the update is applied,
 * so of two writers that read the same version exactly one wins. See docs/database.md.
 */
import {
  MongoClient,
  MongoClientClosedError,
  MongoError,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
  type Collection,
  type Db,
  type Document,
} from 'mongodb';
import {
  ConflictError,
  ModeldockError,
  NotFoundError,
  StaleVersionError,
  StoreUnavailableError,
  errorMessage,
} from '../../errors.js';
import type { JobRecord, OperationRecord, Placement, ServerRecord } from '../records.js';
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
import { durabilityDefaults, writeConcernRefusal, type EffectiveWriteConcern } from './write-concern.js';

export const MONGO_SCHEMA_VERSION = 1;
/** A version claim older than this whose update never landed belongs to a writer that died. */
const ABANDONED_CLAIM_MS = 30_000;

interface JobDoc {
  _id: string;
  job_id: string;
  model: string;
  dataset: string;
  /** Absent on jobs from before replicas existed: they keep the original one server. */
  replicas_min?: number;
  replicas_max?: number;
  desired_replicas?: number;
  scale_target?: number | null;
  /** Absent on jobs from before placement existed: dedicated. */
  placement?: Placement;
  created_at: Date;
  updated_at: Date;
}

interface ServerDoc {
  _id: string;
  server_id: string;
  number: number;
  job_id: string;
  model: string;
  dataset: string;
  kind: 'job' | 'temp';
  /** Absent on servers from before placement existed: dedicated. */
  placement?: Placement;
  state: string;
  reason: string | null;
  runtime: string;
  worker_name: string;
  worker_id: string | null;
  endpoint: string | null;
  version: number;
  restarts: number;
  created_at: Date;
  updated_at: Date;
  loaded_at: Date | null;
  last_used_at: Date | null;
  terminated_at: Date | null;
}

interface OperationDoc {
  _id: string;
  operation_id: string;
  seq: number;
  type: string;
  job_id: string;
  server_id: string | null;
  status: string;
  reason: string;
  /** Absent on records written before keys existed. */
  caller?: string;
  steps: { name: string; started_at: Date; duration_ms: number }[];
  warnings: string[];
  error: { code: string; message: string } | null;
  started_at: Date;
  finished_at: Date | null;
  duration_ms: number | null;
}

const SERVER_FIELDS: Record<string, string> = {
  state: 'state',
  reason: 'reason',
  runtime: 'runtime',
  workerName: 'worker_name',
  workerId: 'worker_id',
  endpoint: 'endpoint',
  restarts: 'restarts',
  model: 'model',
  dataset: 'dataset',
  loadedAt: 'loaded_at',
  lastUsedAt: 'last_used_at',
  terminatedAt: 'terminated_at',
};
const DATE_FIELDS = new Set(['loaded_at', 'last_used_at', 'terminated_at']);

let sequence = 0;
/** Orders operations newest first: milliseconds, then a per-process counter. */
function nextSeq(): number {
  sequence = (sequence + 1) % 1000;
  return Date.now() * 1000 + sequence;
}

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null);
const date = (s: string | null | undefined): Date | null => (s ? new Date(s) : null);

function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === 11000;
}

/**
 * Server error codes that mean "not reachable or not serving right now" rather than
 * "this request is wrong": host unreachable/not found, network timeout, shutting down,
 * stepped down, not primary, interrupted at shutdown, socket exception.
 */
const UNAVAILABLE_SERVER_CODES = new Set([6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436]);

/** True when the database is away (so the API answers 503 and the caller may retry later). */
function isUnavailable(error: unknown): boolean {
  return (
    error instanceof MongoNetworkError || // also timeouts and a cleared connection pool
    error instanceof MongoServerSelectionError ||
    error instanceof MongoTopologyClosedError ||
    error instanceof MongoNotConnectedError ||
    error instanceof MongoClientClosedError ||
    error instanceof MongoOperationTimeoutError ||
    (error instanceof MongoServerError &&
      (UNAVAILABLE_SERVER_CODES.has(Number(error.code)) || error.hasErrorLabel('ResetPool')))
  );
}

/** The URL as it may appear in a message: without credentials. */
function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}

export class MongoStore implements Store {
  readonly kind = 'mongodb' as const;
  private readonly client: MongoClient;
  private readonly db: Db;

  constructor(private readonly url: string) {
    this.client = new MongoClient(url, {
      // Fail fast while the database is away, so the API answers 503 instead of hanging;
      // the driver reconnects by itself when it is back.
      serverSelectionTimeoutMS: 2_000,
      connectTimeoutMS: 2_000,
      socketTimeoutMS: 30_000,
      // w: "majority", j: true and retryable writes unless the URL says otherwise
      // (write-concern.ts); init() refuses a server that cannot honour what results.
      ...durabilityDefaults(url),
      appName: 'modeldock',
    });
    // The database named in the URL; the driver connects on first use (init() does it explicitly).
    this.db = this.client.db();
  }

  private get jobs(): Collection<JobDoc> {
    return this.db.collection<JobDoc>('jobs');
  }
  private get servers(): Collection<ServerDoc> {
    return this.db.collection<ServerDoc>('servers');
  }
  private get operations(): Collection<OperationDoc> {
    return this.db.collection<OperationDoc>('operations');
  }
  private get numbers(): Collection<{ _id: number; claimed_at: Date }> {
    return this.db.collection('server_numbers');
  }
  private get versions(): Collection<{ _id: string; claimed_at: Date }> {
    return this.db.collection('server_versions');
  }

  async init(): Promise<void> {
    await this.guard(async () => {
      await this.client.connect();
      await this.checkWriteConcern();
      const meta = this.db.collection<{ _id: string; version: number; updated_at: Date }>('meta');
      const current = await meta.findOne({ _id: 'schema' });
      if (current && current.version > MONGO_SCHEMA_VERSION) {
        throw new StoreUnavailableError(
          `database schema version ${current.version} is newer than this modeldock (${MONGO_SCHEMA_VERSION})`,
        );
      }
      await this.servers.createIndex({ job_id: 1, kind: 1, number: -1 }, { name: 'by_job' });
      await this.servers.createIndex({ state: 1 }, { name: 'by_state' });
      await this.servers.createIndex({ number: 1 }, { name: 'by_number', unique: true });
      await this.operations.createIndex({ job_id: 1, seq: -1 }, { name: 'by_job' });
      await this.operations.createIndex({ status: 1 }, { name: 'by_status' });
      await this.operations.createIndex({ seq: -1 }, { name: 'by_seq' });
      // Written with the store's own write concern, bounded in time: a replica set whose
      // majority is away refuses it here, at start, rather than hanging the first request.
      await meta
        .updateOne(
          { _id: 'schema' },
          { $set: { version: MONGO_SCHEMA_VERSION, updated_at: new Date() } },
          {
            upsert: true,
            writeConcern: {
              w: this.db.writeConcern?.w,
              journal: this.db.writeConcern?.journal,
              wtimeoutMS: 10_000,
            },
          },
        )
        .catch((error: unknown) => {
          if (!(error instanceof MongoWriteConcernError)) throw error;
          throw new StoreUnavailableError(
            `refusing ${redact(this.url)}: the server did not honour the write concern ` +
              `(${JSON.stringify(this.writeConcern())}): ${errorMessage(error)}`,
            { cause: error },
          );
        });
    });
  }

  /** The write concern every write of this store carries (the defaults merged with the URL's). */
  writeConcern(): EffectiveWriteConcern {
    return { w: this.db.writeConcern?.w, journal: this.db.writeConcern?.journal };
  }

  /** Refuses (StoreUnavailableError, saying why) a server that cannot honour the write concern. */
  private async checkWriteConcern(): Promise<void> {
    const admin = this.client.db('admin');
    const [hello, build] = await Promise.all([admin.command({ hello: 1 }), admin.command({ buildInfo: 1 })]);
    const refusal = writeConcernRefusal(this.writeConcern(), {
      mongos: hello['msg'] === 'isdbgrid',
      ...(typeof hello['setName'] === 'string' ? { setName: hello['setName'] } : {}),
      ...(Array.isArray(hello['hosts']) ? { hosts: hello['hosts'] as string[] } : {}),
      ...(typeof build['ferretdbVersion'] === 'string' ? { ferretdbVersion: build['ferretdbVersion'] } : {}),
    });
    if (refusal) throw new StoreUnavailableError(`refusing ${redact(this.url)}: ${refusal}`);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
  }

  async ping(): Promise<void> {
    await this.guard(() => this.db.command({ ping: 1 }));
  }

  /**
   * The writes of `work` as they come, each acknowledged before the next: FerretDB has no
   * multi-document transactions, and nothing may depend on them (store.ts). What a
   * transaction saves on SQLite (an fsync per write) MongoDB's journal commits group
   * by themselves.
   */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  async ensureJob(job: NewJob): Promise<JobRecord> {
    return this.guard(async () => {
      const now = new Date();
      const { replicas, desiredReplicas, scaleTarget, placement } = newJobReplicas(job);
      const doc: JobDoc = {
        _id: job.jobId,
        job_id: job.jobId,
        model: job.model,
        dataset: job.dataset,
        replicas_min: replicas.min,
        replicas_max: replicas.max,
        desired_replicas: desiredReplicas,
        scale_target: scaleTarget,
        placement,
        created_at: now,
        updated_at: now,
      };
      try {
        await this.jobs.insertOne(doc);
        return toJob(doc);
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
      }
      // It existed: return it unchanged.
      const existing = await this.jobs.findOne({ _id: job.jobId });
      if (!existing) throw new ConflictError(`job ${job.jobId} was removed while being ensured`);
      return toJob(existing);
    });
  }

  async updateJob(jobId: string, patch: JobPatch): Promise<JobRecord> {
    return this.guard(async () => {
      const set: Partial<JobDoc> = { updated_at: new Date() };
      if (patch.model !== undefined) set.model = patch.model;
      if (patch.dataset !== undefined) set.dataset = patch.dataset;
      if (patch.replicas !== undefined) {
        set.replicas_min = patch.replicas.min;
        set.replicas_max = patch.replicas.max;
      }
      if (patch.desiredReplicas !== undefined) set.desired_replicas = patch.desiredReplicas;
      if (patch.scaleTarget !== undefined) set.scale_target = patch.scaleTarget;
      if (patch.placement !== undefined) set.placement = patch.placement;
      const result = await this.jobs.updateOne({ _id: jobId }, { $set: set });
      if (result.matchedCount === 0) throw new NotFoundError(`job ${jobId} not found`);
      return toJob((await this.jobs.findOne({ _id: jobId }))!);
    });
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    return this.guard(async () => {
      const doc = await this.jobs.findOne({ _id: jobId });
      return doc ? toJob(doc) : undefined;
    });
  }

  async listJobs(): Promise<JobRecord[]> {
    return this.guard(async () =>
      (await this.jobs.find().sort({ created_at: 1, _id: 1 }).toArray()).map(toJob),
    );
  }

  async reserveServerNumber(number: number): Promise<void> {
    await this.guard(async () => {
      try {
        await this.numbers.insertOne({ _id: number, claimed_at: new Date() });
      } catch (error) {
        if (!isDuplicateKey(error)) throw error; // Already claimed: nothing to do.
      }
    });
  }

  async allocateServerNumber(): Promise<number> {
    return this.guard(async () => {
      const last = await this.numbers.find().sort({ _id: -1 }).limit(1).next();
      let candidate = (last?._id ?? 0) + 1;
      for (let attempt = 0; attempt < 1000; attempt++, candidate++) {
        try {
          await this.numbers.insertOne({ _id: candidate, claimed_at: new Date() });
          return candidate;
        } catch (error) {
          if (!isDuplicateKey(error)) throw error;
          // Someone claimed it first: the unique _id decided; try the next one.
        }
      }
      throw new StoreUnavailableError('could not claim a server number after 1000 attempts');
    });
  }

  async insertServer(
    server: Omit<ServerRecord, 'version' | 'createdAt' | 'updatedAt'>,
  ): Promise<ServerRecord> {
    return this.guard(async () => {
      const now = new Date();
      const doc: ServerDoc = {
        _id: server.serverId,
        server_id: server.serverId,
        number: server.number,
        job_id: server.jobId,
        model: server.model,
        dataset: server.dataset,
        kind: server.kind,
        placement: server.placement,
        state: server.state,
        reason: server.reason,
        runtime: server.runtime,
        worker_name: server.workerName,
        worker_id: server.workerId,
        endpoint: server.endpoint,
        version: 1,
        restarts: server.restarts,
        created_at: now,
        updated_at: now,
        loaded_at: date(server.loadedAt),
        last_used_at: date(server.lastUsedAt),
        terminated_at: date(server.terminatedAt),
      };
      try {
        await this.servers.insertOne(doc);
      } catch (error) {
        if (isDuplicateKey(error)) throw new ConflictError(`server ${server.serverId} already exists`);
        throw error;
      }
      return toServer(doc);
    });
  }

  async getServer(serverId: string): Promise<ServerRecord | undefined> {
    return this.guard(async () => {
      const doc = await this.servers.findOne({ _id: serverId });
      return doc ? toServer(doc) : undefined;
    });
  }

  async updateServer(serverId: string, expectedVersion: number, patch: ServerPatch): Promise<ServerRecord> {
    return this.guard(async () => {
      const current = await this.servers.findOne({ _id: serverId });
      if (!current) throw new NotFoundError(`server ${serverId} not found`);
      const stale = () =>
        new StaleVersionError(`server ${serverId} changed meanwhile (expected version ${expectedVersion})`);
      if (current.version !== expectedVersion) throw stale();
      const next = expectedVersion + 1;
      const claimId = `${serverId}#${next}`;
      try {
        await this.versions.insertOne({ _id: claimId, claimed_at: new Date() });
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        // Lost to another writer, unless the claim was left by a writer that died before updating.
        const claim = await this.versions.findOne({ _id: claimId });
        const again = await this.servers.findOne({ _id: serverId });
        const abandoned =
          claim &&
          again?.version === expectedVersion &&
          Date.now() - claim.claimed_at.getTime() > ABANDONED_CLAIM_MS;
        if (!abandoned) throw stale();
        await this.versions.deleteOne({ _id: claimId, claimed_at: claim.claimed_at });
        return this.updateServer(serverId, expectedVersion, patch);
      }
      const set: Partial<ServerDoc> = { version: next, updated_at: new Date() };
      for (const [key, value] of Object.entries(patch)) {
        const field = SERVER_FIELDS[key];
        if (!field || value === undefined) continue;
        (set as Document)[field] = DATE_FIELDS.has(field) ? date(value as string | null) : value;
      }
      let result;
      try {
        result = await this.servers.updateOne({ _id: serverId, version: expectedVersion }, { $set: set });
      } catch (error) {
        // The update did not land (or we cannot know): release the claim if the database
        // still answers, so the next writer need not wait for it to be taken over as abandoned.
        const after = await this.servers.findOne({ _id: serverId }).catch(() => undefined);
        if (after?.version === expectedVersion) {
          await this.versions.deleteOne({ _id: claimId }).catch(() => undefined);
        }
        throw error;
      }
      if (result.matchedCount === 0) throw stale();
      // The previous claim is no longer needed by anyone; the newest one stays until the next update.
      await this.versions.deleteOne({ _id: `${serverId}#${expectedVersion}` }).catch(() => undefined);
      // Exactly what was written: the claim makes this writer the only one for this version.
      return toServer({ ...current, ...set });
    });
  }

  async listServers(filter: ServerFilter = {}): Promise<ServerRecord[]> {
    return this.guard(async () => {
      const query: Document = {};
      if (filter.jobId !== undefined) query.job_id = filter.jobId;
      if (filter.kind !== undefined) query.kind = filter.kind;
      if (filter.states !== undefined) query.state = { $in: [...filter.states] };
      return (await this.servers.find(query).sort({ number: 1 }).toArray()).map(toServer);
    });
  }

  async currentServer(jobId: string): Promise<ServerRecord | undefined> {
    return this.guard(async () => {
      const doc = await this.servers
        .find({ job_id: jobId, kind: 'job' })
        .sort({ number: -1 })
        .limit(1)
        .next();
      return doc ? toServer(doc) : undefined;
    });
  }

  async insertOperation(op: OperationRecord): Promise<void> {
    await this.guard(async () => {
      try {
        await this.operations.insertOne(toOperationDoc(op));
      } catch (error) {
        if (isDuplicateKey(error)) throw new ConflictError(`operation ${op.operationId} already exists`);
        throw error;
      }
    });
  }

  async updateOperation(operationId: string, patch: OperationPatch): Promise<OperationRecord> {
    return this.guard(async () => {
      const set: Document = {};
      if (patch.serverId !== undefined) set.server_id = patch.serverId;
      if (patch.status !== undefined) set.status = patch.status;
      if (patch.reason !== undefined) set.reason = patch.reason;
      if (patch.steps !== undefined) set.steps = patch.steps.map(toStepDoc);
      if (patch.warnings !== undefined) set.warnings = patch.warnings;
      if (patch.error !== undefined) set.error = patch.error;
      if (patch.finishedAt !== undefined) set.finished_at = date(patch.finishedAt);
      if (patch.durationMs !== undefined) set.duration_ms = patch.durationMs;
      // Unconditional (an operation record has one writer), so findOneAndUpdate's atomicity
      // does not matter here: it only saves the second round trip.
      const doc =
        Object.keys(set).length > 0
          ? await this.operations.findOneAndUpdate(
              { _id: operationId },
              { $set: set },
              { returnDocument: 'after' },
            )
          : await this.operations.findOne({ _id: operationId });
      if (!doc) throw new NotFoundError(`operation ${operationId} not found`);
      return toOperation(doc);
    });
  }

  async getOperation(operationId: string): Promise<OperationRecord | undefined> {
    return this.guard(async () => {
      const doc = await this.operations.findOne({ _id: operationId });
      return doc ? toOperation(doc) : undefined;
    });
  }

  async listOperations(filter: OperationFilter = {}): Promise<OperationRecord[]> {
    return this.guard(async () => {
      const query: Document = {};
      if (filter.jobId !== undefined) query.job_id = filter.jobId;
      if (filter.serverId !== undefined) query.server_id = filter.serverId;
      if (filter.type !== undefined) query.type = filter.type;
      if (filter.status !== undefined) query.status = filter.status;
      const docs = await this.operations
        .find(query)
        .sort({ seq: -1 })
        .limit(filter.limit ?? 100)
        .toArray();
      return docs.map(toOperation);
    });
  }

  /**
   * Domain errors pass. A database that is away becomes StoreUnavailableError (503, retry
   * later); any other driver error is a bug or a refused request, not an outage.
   */
  private async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ModeldockError) throw error;
      if (isUnavailable(error)) {
        throw new StoreUnavailableError(
          `MongoDB store unavailable (${redact(this.url)}): ${errorMessage(error)}`,
          { cause: error },
        );
      }
      if (error instanceof MongoError) {
        throw new ModeldockError('internal', `MongoDB store error: ${errorMessage(error)}`, { cause: error });
      }
      throw error;
    }
  }
}

function toJob(doc: JobDoc): JobRecord {
  return {
    jobId: doc.job_id,
    model: doc.model,
    dataset: doc.dataset,
    replicas: { min: doc.replicas_min ?? 1, max: doc.replicas_max ?? 1 },
    desiredReplicas: doc.desired_replicas ?? 1,
    scaleTarget: doc.scale_target ?? null,
    placement: doc.placement ?? 'dedicated',
    createdAt: iso(doc.created_at)!,
    updatedAt: iso(doc.updated_at)!,
  };
}

function toServer(doc: ServerDoc): ServerRecord {
  return {
    serverId: doc.server_id,
    number: doc.number,
    jobId: doc.job_id,
    model: doc.model,
    dataset: doc.dataset,
    kind: doc.kind,
    placement: doc.placement ?? 'dedicated',
    state: doc.state as ServerRecord['state'],
    reason: doc.reason ?? null,
    runtime: doc.runtime,
    workerName: doc.worker_name,
    workerId: doc.worker_id ?? null,
    endpoint: doc.endpoint ?? null,
    version: doc.version,
    restarts: doc.restarts,
    createdAt: iso(doc.created_at)!,
    updatedAt: iso(doc.updated_at)!,
    loadedAt: iso(doc.loaded_at),
    lastUsedAt: iso(doc.last_used_at),
    terminatedAt: iso(doc.terminated_at),
  };
}

function toStepDoc(step: OperationRecord['steps'][number]) {
  return { name: step.name, started_at: new Date(step.startedAt), duration_ms: step.durationMs };
}

function toOperationDoc(op: OperationRecord): OperationDoc {
  return {
    _id: op.operationId,
    operation_id: op.operationId,
    seq: nextSeq(),
    type: op.type,
    job_id: op.jobId,
    server_id: op.serverId,
    status: op.status,
    reason: op.reason,
    caller: op.caller,
    steps: op.steps.map(toStepDoc),
    warnings: op.warnings,
    error: op.error,
    started_at: new Date(op.startedAt),
    finished_at: date(op.finishedAt),
    duration_ms: op.durationMs,
  };
}

function toOperation(doc: OperationDoc): OperationRecord {
  return {
    operationId: doc.operation_id,
    type: doc.type as OperationRecord['type'],
    jobId: doc.job_id,
    serverId: doc.server_id ?? null,
    status: doc.status as OperationRecord['status'],
    reason: doc.reason,
    caller: doc.caller ?? 'unknown',
    steps: (doc.steps ?? []).map((s) => ({
      name: s.name as OperationRecord['steps'][number]['name'],
      startedAt: iso(s.started_at)!,
      durationMs: s.duration_ms,
    })),
    warnings: doc.warnings ?? [],
    error: doc.error ?? null,
    startedAt: iso(doc.started_at)!,
    finishedAt: iso(doc.finished_at),
    durationMs: doc.duration_ms ?? null,
  };
}
