/**
 * The shapes the lifecycle's parts share: what callers ask for, what they get back, and
 * what the lifecycle is built from. Kept apart from the parts so none of them imports
 * another just for a type.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import type { Runtime, WorkerLimits } from '../runtime/runtime.js';
import type { BatchResult, WorkerClient } from '../runtime/worker-client.js';
import type { OperationRecord, Placement, ReplicaBounds, ServerRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { Catalog } from './catalog.js';
import type { CreationLimits } from './creation-gate.js';
import type { EventBus } from './event-bus.js';

export interface JobRequest {
  jobId: string;
  model: string;
  dataset: string;
  /** From the original payload: never trusted, only compared and reported. */
  containerId?: string | null;
  /** DEPLOY_CREATE: how many servers the job may have; absent: the job's own (1/1 for a new job). */
  replicas?: ReplicaBounds;
  /** DEPLOY_CREATE: in-flight requests per replica the autoscaler aims at; null: the router's default. */
  scaleTarget?: number | null;
  /** DEPLOY_CREATE and TEMP: where the job's servers live; absent: the job's own, else MODELDOCK_PLACEMENT. */
  placement?: Placement;
}

export interface TempRequest extends JobRequest {
  /** Open Inference Protocol request body; without it TEMP runs over the whole dataset. */
  inputs?: unknown;
}

export interface OperationOutcome {
  operation: OperationRecord;
  /** The job's first server after the operation (the one the original answer names). */
  server: ServerRecord | null;
  /** All the job's servers the operation acted on (its replicas); absent for TEMP. */
  servers?: ServerRecord[];
  /** TEMP: the batch result or the inference response. */
  result?: BatchResult | unknown;
}

export interface LifecycleOptions {
  instance: string;
  idleUnloadMs?: number;
  maxLoadedModels?: number;
  memoryBudgetBytes?: number;
  /** Started, model-less workers kept ready for DEPLOY_CREATE and TEMP; 0: off. */
  warmPoolSize?: number;
  /** Idle foreign servers kept ready per serving runtime (entry name → count); none by default. */
  warmPoolRuntimes?: Record<string, number>;
  readyTimeoutMs: number;
  workerLimits: WorkerLimits;
  stopTimeoutSeconds?: number;
  /** Bounds on live servers and concurrent creations (creation-gate.ts); defaults when absent. */
  creationLimits?: CreationLimits;
  /** How long an unload or a termination waits for requests under way on the job's route. */
  drainTimeoutMs?: number;
  /** How long an inference request waits for its job's server to be ready before a 503. */
  loadWaitMs?: number;
  /** The autoscaler's defaults (autoscaler.ts). */
  scaling?: ScalingOptions;
  /** Shared placement: the default placement and the shared fleet's bounds (shared-fleet.ts). */
  shared?: SharedOptions;
}

export interface SharedOptions {
  /** Where a job's servers live when its request does not say (MODELDOCK_PLACEMENT). */
  placement: Placement;
  /** Models one shared worker hosts at most (MODELDOCK_SHARED_JOBS_PER_WORKER). */
  jobsPerWorker: number;
  /** Models on shared workers at most, all together (MODELDOCK_MAX_SHARED_JOBS). */
  maxJobs: number;
  /** How long a shared worker hosts nothing before it is closed (MODELDOCK_SHARED_IDLE_MS). */
  idleMs: number;
  /** A model loaded less than this ago is evicted only when nothing else can go (MODELDOCK_MIN_RESIDENCY_MS). */
  minResidencyMs: number;
  /**
   * Share of MODELDOCK_MEMORY_BUDGET kept free ahead of need, in percent
   * (MODELDOCK_EVICTION_HEADROOM_PERCENT; default 5, 0: evict only when a load needs room).
   */
  headroomPercent?: number;
}

export interface ScalingOptions {
  /** In-flight requests per replica to aim at (MODELDOCK_SCALE_TARGET), unless the job sets its own. */
  target: number;
  /** How long demand must stay above the replicas before one is added (MODELDOCK_SCALE_UP_DELAY_MS). */
  upDelayMs: number;
  /** How long demand must stay below the replicas before one is removed (MODELDOCK_SCALE_DOWN_DELAY_MS). */
  downDelayMs: number;
  /** How often demand is sampled (default 250 ms). */
  intervalMs?: number;
}

export interface LifecycleDeps {
  store: Store;
  runtime: Runtime;
  workers: WorkerClient;
  catalog: Catalog;
  metrics: Metrics;
  events: EventBus;
  logger: Logger;
  options: LifecycleOptions;
}
