/**
 * The records modeldock keeps. Field names are camelCase here; each store maps them to
 * its own columns or documents (the MongoDB store uses snake_case field names, as the
 * original system did, so `db.servers.find({job_id: "a1"})` reads naturally).
 */

export const SERVER_STATES = [
  'creating',
  'loading',
  'ready',
  'unloading',
  'unloaded',
  'terminating',
  'terminated',
  'failed',
] as const;
export type ServerState = (typeof SERVER_STATES)[number];

export const OPERATION_TYPES = [
  'DEPLOY_CREATE',
  'DEPLOY_LOAD',
  'DEPLOY_UNLOAD',
  'TERMINATE',
  'TEMP',
  'INFER',
  'RECONCILE',
  'EVICT',
] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];

export type OperationStatus = 'running' | 'succeeded' | 'failed';

/** `job` servers belong to a job until terminated; `temp` servers live for one TEMP operation. */
export type ServerKind = 'job' | 'temp';

/**
 * Where a job's servers live: `dedicated` gives each server a worker of its own (the
 * original system's one container per job); `shared` loads the job's model, under the
 * job's name, into a shared worker that hosts the models of many jobs.
 */
export const PLACEMENTS = ['dedicated', 'shared'] as const;
export type Placement = (typeof PLACEMENTS)[number];

/** How many servers (replicas) a job may have; the router scales between the two. */
export interface ReplicaBounds {
  min: number;
  max: number;
}

/** The original behaviour: one server per job, always. */
export const DEFAULT_REPLICAS: ReplicaBounds = { min: 1, max: 1 };

/** The replica count a job starts with: its minimum, but at least one so a create answers ready. */
export function initialReplicas(replicas: ReplicaBounds): number {
  return Math.min(replicas.max, Math.max(1, replicas.min));
}

export interface JobRecord {
  jobId: string;
  model: string;
  dataset: string;
  replicas: ReplicaBounds;
  /**
   * How many servers the router keeps for the job now (between min and max; the
   * autoscaler moves it). Kept in the store so a restarted router keeps the count.
   */
  desiredReplicas: number;
  /** In-flight requests per replica the autoscaler aims at; null: the router's default. */
  scaleTarget: number | null;
  /** Where its servers live (new servers follow it; a live server keeps its own). */
  placement: Placement;
  createdAt: string;
  updatedAt: string;
}

export interface ServerRecord {
  /** `inf-0001`, derived from `number`; never reused while the record exists. */
  serverId: string;
  number: number;
  jobId: string;
  model: string;
  dataset: string;
  kind: ServerKind;
  /**
   * `dedicated`: `workerName` is this server's own worker. `shared`: it names the shared
   * worker the server's model is loaded in (with other jobs' models); the worker is not
   * the server's to stop or remove.
   */
  placement: Placement;
  state: ServerState;
  /** Why the server is in its state (failure reason, unload reason); null when unremarkable. */
  reason: string | null;
  /** Which runtime runs it: `docker`, `process`, `kubernetes`. */
  runtime: string;
  /** Deterministic worker name (container name), known before the worker exists. */
  workerName: string;
  /** Runtime id of the worker (container id, pid:start-time, ...) once it exists. */
  workerId: string | null;
  /** Base URL of the worker's HTTP API as reachable from the router, once started. */
  endpoint: string | null;
  /** Optimistic-concurrency version: every update must name the version it read. */
  version: number;
  restarts: number;
  createdAt: string;
  updatedAt: string;
  loadedAt: string | null;
  lastUsedAt: string | null;
  terminatedAt: string | null;
}

export type StepName =
  | 'validate'
  | 'record'
  | 'place'
  | 'evict'
  | 'create'
  | 'start'
  | 'wait_ready'
  /** A pooled foreign server's repository gets the job's model (warm-pool.ts). */
  | 'link'
  | 'load'
  | 'infer'
  | 'drain'
  | 'unload'
  | 'measure_memory'
  | 'stop'
  | 'remove';

export interface OperationStep {
  name: StepName;
  startedAt: string;
  durationMs: number;
}

export interface OperationError {
  code: string;
  message: string;
}

export interface OperationRecord {
  operationId: string;
  type: OperationType;
  jobId: string;
  serverId: string | null;
  status: OperationStatus;
  /** Why it ran: `request`, `idle_timeout`, `lru`, `restart`, `recovery`, ... */
  reason: string;
  /**
   * Who asked: the key id of the request (`key-<fingerprint>`, never the key), `anonymous`
   * when no key is asked for, `system` for work the router starts itself.
   */
  caller: string;
  steps: OperationStep[];
  warnings: string[];
  error: OperationError | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
}
