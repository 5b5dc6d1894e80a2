import {
  DEFAULT_REPLICAS,
  initialReplicas,
  type JobRecord,
  type ReplicaBounds,
  type OperationRecord,
  type OperationStatus,
  type OperationType,
  type Placement,
  type ServerKind,
  type ServerRecord,
  type ServerState,
} from './records.js';

/** A new job: replicas default to 1/1 (one server, the original behaviour). */
export interface NewJob {
  jobId: string;
  model: string;
  dataset: string;
  replicas?: ReplicaBounds;
  /** Default: `replicas.min`, at least 1. */
  desiredReplicas?: number;
  scaleTarget?: number | null;
  /** Default: `dedicated`. */
  placement?: Placement;
}

/** What may change on a job; `updatedAt` is maintained by the store. */
export type JobPatch = Partial<
  Pick<JobRecord, 'model' | 'dataset' | 'replicas' | 'desiredReplicas' | 'scaleTarget' | 'placement'>
>;

/** The replica and placement fields of a new job, defaults filled in (every store stores the same). */
export function newJobReplicas(
  job: NewJob,
): Pick<JobRecord, 'replicas' | 'desiredReplicas' | 'scaleTarget' | 'placement'> {
  const replicas = job.replicas ?? DEFAULT_REPLICAS;
  return {
    replicas: { min: replicas.min, max: replicas.max },
    desiredReplicas: job.desiredReplicas ?? initialReplicas(replicas),
    scaleTarget: job.scaleTarget ?? null,
    placement: job.placement ?? 'dedicated',
  };
}

export interface ServerFilter {
  jobId?: string;
  kind?: ServerKind;
  states?: readonly ServerState[];
}

export interface OperationFilter {
  jobId?: string;
  serverId?: string;
  type?: OperationType;
  status?: OperationStatus;
  /** Newest first; default 100. */
  limit?: number;
}

/** The fields an update may change; `version` and `updatedAt` are maintained by the store. */
export type ServerPatch = Partial<
  Omit<
    ServerRecord,
    'serverId' | 'number' | 'jobId' | 'kind' | 'placement' | 'version' | 'createdAt' | 'updatedAt'
  >
>;

export type OperationPatch = Partial<
  Omit<OperationRecord, 'operationId' | 'type' | 'jobId' | 'startedAt' | 'caller'>
>;

/**
 * Where modeldock keeps its state. Every backend passes test/contract/store.contract.ts.
 *
 * Correctness never depends on multi-document transactions, change streams, TTL indexes
 * or an atomic findAndModify (FerretDB has none of them): numbers are claimed through a
 * unique key, and state changes are conditional on the version that was read.
 *
 * Every method throws StoreUnavailableError when the backend cannot be reached, so the
 * API can answer 503 and callers can retry once it is back.
 */
export interface Store {
  readonly kind: 'sqlite' | 'mongodb';
  /** Create tables/collections and indexes; idempotent. */
  init(): Promise<void>;
  close(): Promise<void>;
  /** Throws StoreUnavailableError when the backend does not answer. */
  ping(): Promise<void>;

  /**
   * Run `work`, whose calls on this store (in its asynchronous context) are committed
   * together: on SQLite one transaction, one commit and one fsync instead of one per
   * write; on MongoDB (FerretDB has no transactions) each write as it comes, in order.
   * Either way the writes mean what they mean one at a time: conditional updates and
   * unique keys still decide, whatever `work` wrote before a throw stays, and nothing may
   * depend on the writes becoming visible together. `work` calls nothing but this store:
   * other callers wait while it runs. A call inside another transaction joins it.
   */
  transaction<T>(work: () => Promise<T>): Promise<T>;

  /** Insert the job, or return the existing one unchanged (nothing is overwritten). */
  ensureJob(job: NewJob): Promise<JobRecord>;
  /**
   * Change fields of an existing job: model/dataset (only allowed by the router when it
   * has no live server), replica bounds, desired replicas, scale target.
   */
  updateJob(jobId: string, patch: JobPatch): Promise<JobRecord>;
  getJob(jobId: string): Promise<JobRecord | undefined>;
  listJobs(): Promise<JobRecord[]>;

  /**
   * Claim the next server number. Never returns the same number twice, also to several
   * routers sharing one database; numbers are not reused even after their record is gone.
   */
  allocateServerNumber(): Promise<number>;
  /**
   * Count `number` as handed out (a worker of that number was adopted after its record
   * was lost): later allocations return higher numbers. Idempotent.
   */
  reserveServerNumber(number: number): Promise<void>;
  /** Insert a new server record (version 1). Throws ConflictError if the id exists. */
  insertServer(server: Omit<ServerRecord, 'version' | 'createdAt' | 'updatedAt'>): Promise<ServerRecord>;
  getServer(serverId: string): Promise<ServerRecord | undefined>;
  /**
   * Conditional update: applies only if the stored version equals `expectedVersion`,
   * then increments it. Throws StaleVersionError otherwise, NotFoundError if absent.
   */
  updateServer(serverId: string, expectedVersion: number, patch: ServerPatch): Promise<ServerRecord>;
  /** Ordered by number ascending. */
  listServers(filter?: ServerFilter): Promise<ServerRecord[]>;
  /** The job's newest server of kind `job` (any state), or undefined. */
  currentServer(jobId: string): Promise<ServerRecord | undefined>;

  insertOperation(op: OperationRecord): Promise<void>;
  updateOperation(operationId: string, patch: OperationPatch): Promise<OperationRecord>;
  getOperation(operationId: string): Promise<OperationRecord | undefined>;
  listOperations(filter?: OperationFilter): Promise<OperationRecord[]>;
}
