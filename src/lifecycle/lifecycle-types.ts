/**
 * The shapes the lifecycle's parts share: what callers ask for, what they get back, and
 * what the lifecycle is built from. Kept apart from the parts so none of them imports
 * another just for a type.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../observability/metrics.js';
import type { Runtime, WorkerLimits } from '../runtime/runtime.js';
import type { BatchResult, WorkerClient } from '../runtime/worker-client.js';
import type { OperationRecord, ServerRecord } from '../store/records.js';
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
}

export interface TempRequest extends JobRequest {
  /** Open Inference Protocol request body; without it TEMP runs over the whole dataset. */
  inputs?: unknown;
}

export interface OperationOutcome {
  operation: OperationRecord;
  server: ServerRecord | null;
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
  readyTimeoutMs: number;
  workerLimits: WorkerLimits;
  stopTimeoutSeconds?: number;
  /** Bounds on live servers and concurrent creations (creation-gate.ts); defaults when absent. */
  creationLimits?: CreationLimits;
  /** How long an unload or a termination waits for requests under way on the job's route. */
  drainTimeoutMs?: number;
  /** How long an inference request waits for its job's server to be ready before a 503. */
  loadWaitMs?: number;
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
