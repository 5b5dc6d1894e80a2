/** How records look on the wire (the shapes are declared in wire-types.ts). */
import type { OperationRecord, ServerRecord, JobRecord } from '../store/records.js';
import type { OperationOutcome } from '../lifecycle/lifecycle.js';
import type { CreationStatus } from '../lifecycle/creation-gate.js';
import type { PoolStatus } from '../lifecycle/warm-pool.js';
import type { PoolsStatus } from '../lifecycle/warm-pools.js';
import type { SharedStatus } from '../lifecycle/shared-fleet.js';
import type { JobView, OperationView, PoolView, RuntimePoolView, ServerView } from './wire-types.js';
import type { RouterBudgets } from './request-budgets.js';

export function presentServer(server: ServerRecord): ServerView {
  return {
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
    container_name: server.workerName,
    container_id: server.workerId,
    endpoint: server.endpoint,
    version: server.version,
    restarts: server.restarts,
    created_at: server.createdAt,
    updated_at: server.updatedAt,
    loaded_at: server.loadedAt,
    last_used_at: server.lastUsedAt,
    terminated_at: server.terminatedAt,
  };
}

export function presentOperation(operation: OperationRecord): OperationView {
  return {
    operation_id: operation.operationId,
    type: operation.type,
    job_id: operation.jobId,
    server_id: operation.serverId,
    status: operation.status,
    reason: operation.reason,
    caller: operation.caller,
    steps: operation.steps.map((s) => ({ name: s.name, started_at: s.startedAt, duration_ms: s.durationMs })),
    warnings: operation.warnings,
    error: operation.error,
    started_at: operation.startedAt,
    finished_at: operation.finishedAt,
    duration_ms: operation.durationMs,
  };
}

/**
 * A job with its replicas: `server` is the one answers name (its first live server, else
 * its last one), `servers` all its live ones; `state` the best any replica is in.
 */
export function presentJob(
  job: JobRecord,
  server: ServerRecord | null | undefined,
  servers: readonly ServerRecord[] = server && server.state !== 'terminated' ? [server] : [],
): JobView {
  const ready = servers.filter((s) => s.state === 'ready').length;
  const scaledToZero = servers.length === 0 && job.desiredReplicas === 0;
  return {
    job_id: job.jobId,
    model: job.model,
    dataset: job.dataset,
    placement: job.placement,
    state: jobState(servers, scaledToZero),
    replicas: {
      min: job.replicas.min,
      max: job.replicas.max,
      desired: scaledToZero || servers.length > 0 ? job.desiredReplicas : 0,
      ready,
      scale_target: job.scaleTarget,
    },
    server: server ? presentServer(server) : null,
    servers: servers.map(presentServer),
    created_at: job.createdAt,
    updated_at: job.updatedAt,
  };
}

/** Ready when any replica serves; else the first replica's state; `scaled_to_zero` or `none` without one. */
function jobState(servers: readonly ServerRecord[], scaledToZero: boolean): string {
  if (servers.some((s) => s.state === 'ready')) return 'ready';
  if (servers[0]) return servers[0].state;
  return scaledToZero ? 'scaled_to_zero' : 'none';
}

/** The answer of the original `POST /inference_router/`: flat, as the POC's callers expect. */
export function presentOriginalOutcome(outcome: OperationOutcome) {
  const { operation, server } = outcome;
  return {
    job_id: operation.jobId,
    operation_type: operation.type,
    operation_id: operation.operationId,
    status: operation.status,
    server_id: server?.serverId ?? null,
    state: server?.state ?? null,
    container_id: server?.workerId ?? null,
    container_name: server?.workerName ?? null,
    model: server?.model ?? null,
    dataset: server?.dataset ?? null,
    // Shared: container_id/container_name name the shared worker the job's model is loaded in.
    placement: server?.placement ?? null,
    warnings: operation.warnings,
    duration_ms: operation.durationMs,
    steps: operation.steps.map((s) => ({ name: s.name, duration_ms: s.durationMs })),
    // A job with more than one replica: each one's server and container as well.
    ...(outcome.servers && outcome.servers.length > 1
      ? {
          servers: outcome.servers.map((s) => ({
            server_id: s.serverId,
            state: s.state,
            container_id: s.workerId,
            container_name: s.workerName,
          })),
        }
      : {}),
    ...(outcome.result === undefined ? {} : { result: outcome.result }),
  };
}

/** `GET /v1/limits`: the bounds against exhaustion and how close the router is to them. */
export function presentLimits(status: CreationStatus, budgets?: RouterBudgets, shared?: SharedStatus) {
  return {
    max_servers: status.maxServers,
    live_servers: status.liveServers,
    create_concurrency: status.concurrency,
    creating: status.creating,
    create_queue: status.queue,
    queued: status.queued,
    ...(shared
      ? {
          // Jobs on shared workers, against their own bound; the workers count in live_servers.
          max_shared_jobs: shared.maxJobs,
          shared_jobs: shared.jobs,
          shared_workers: shared.workers,
        }
      : {}),
    ...(budgets
      ? {
          // Bytes of request bodies held now, at what holding them costs (request-budgets.ts).
          request_memory: budgets.inference.limitBytes,
          inference_bytes_in_flight: budgets.inference.inFlightBytes,
          administration_bytes_in_flight: budgets.administration.inFlightBytes,
        }
      : {}),
  };
}

/**
 * `GET /v1/pool`: modeldock's worker pool (its configured size, the bound it keeps now and
 * why), and under `runtimes` every serving runtime's pool the same way.
 */
export function presentPool(pools: PoolsStatus): PoolView {
  return { ...presentOnePool(pools), runtimes: pools.runtimes.map(presentOnePool) };
}

function presentOnePool(pool: PoolStatus): RuntimePoolView {
  return {
    runtime: pool.runtime,
    size: pool.size,
    limit: pool.limit,
    bounded_by: pool.boundedBy,
    ready: pool.ready,
    filling: pool.filling,
    worker_bytes: pool.workerBytes,
    worker_bytes_measured: pool.workerBytesMeasured,
    budget_free_bytes: pool.budgetFreeBytes,
  };
}
