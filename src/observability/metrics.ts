/**
 * Prometheus metrics of the router. One registry per router instance (tests build
 * several routers in one process), exposed at /metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SERVER_STATES, type ServerState } from '../store/records.js';

export class Metrics {
  readonly registry = new Registry();

  readonly operations = new Counter({
    name: 'modeldock_operations_total',
    help: 'Lifecycle operations by type and outcome',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly operationDuration = new Histogram({
    name: 'modeldock_operation_duration_seconds',
    help: 'Duration of lifecycle operations',
    labelNames: ['type'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly stepDuration = new Histogram({
    name: 'modeldock_operation_step_duration_seconds',
    help: 'Duration of each step of lifecycle operations (create, start, wait_ready, load, ...)',
    labelNames: ['type', 'step'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });

  readonly servers = new Gauge({
    name: 'modeldock_servers',
    help: 'Servers by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly workerStoreFiles = new Counter({
    name: 'modeldock_worker_store_files_total',
    help: 'Store files asked of the router by its workers (MODELDOCK_K8S_STORE=router), by kind, file and answer (200 sent, 304 unchanged, 401, 404)',
    labelNames: ['kind', 'file', 'status'] as const,
    registers: [this.registry],
  });

  readonly inferenceRequests = new Counter({
    name: 'modeldock_inference_requests_total',
    help: 'Inference requests routed, by job and HTTP status class',
    labelNames: ['job', 'status'] as const,
    registers: [this.registry],
  });

  readonly inferenceLatency = new Histogram({
    name: 'modeldock_inference_duration_seconds',
    help: 'Latency of routed inference requests by job (router in to router out)',
    labelNames: ['job'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [this.registry],
  });

  readonly coldStartDuration = new Histogram({
    name: 'modeldock_cold_start_duration_seconds',
    help: 'Time a job scaled to zero took to serve again: from the first request to its first ready replica',
    labelNames: ['job'] as const,
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly replicas = new Gauge({
    name: 'modeldock_job_replicas',
    help: 'Replicas of each job the autoscaler keeps (desired) and that serve (ready)',
    labelNames: ['job', 'kind'] as const,
    registers: [this.registry],
  });

  readonly scaleEvents = new Counter({
    name: 'modeldock_scale_events_total',
    help: 'Autoscaler decisions by direction (up, down) and outcome (done, refused by the quota, failed)',
    labelNames: ['direction', 'outcome'] as const,
    registers: [this.registry],
  });

  /**
   * Requests and calls refused before their body was read: no or a wrong key
   * (unauthenticated), the wrong scope (forbidden), past a bound on what is in flight
   * (busy), a message too slow to arrive (slow). Refusals are logged at debug only, so
   * this counter is where a flood of them shows.
   */
  readonly refusedRequests = new Counter({
    name: 'modeldock_refused_requests_total',
    help: 'Requests refused before their body was read, by protocol (http, grpc) and reason (unauthenticated, forbidden, busy, slow)',
    labelNames: ['protocol', 'reason'] as const,
    registers: [this.registry],
  });

  readonly reconcilePasses = new Counter({
    name: 'modeldock_reconcile_passes_total',
    help: 'Reconcile passes by trigger and outcome',
    labelNames: ['trigger', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly memoryOverLimit = new Counter({
    name: 'modeldock_memory_over_limit_total',
    help: 'Loads that went ahead over MODELDOCK_MAX_LOADED_MODELS (limit="models") or MODELDOCK_MEMORY_BUDGET (limit="budget") because nothing more could be unloaded',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  readonly evictions = new Counter({
    name: 'modeldock_evictions_total',
    help: 'Models evicted from shared workers to make room for another (residency="young" when one loaded less than MODELDOCK_MIN_RESIDENCY_MS ago had to go)',
    labelNames: ['residency'] as const,
    registers: [this.registry],
  });

  readonly drainedWorkers = new Counter({
    name: 'modeldock_shared_workers_drained_total',
    help: 'Shared workers drained and closed because the shared fleet measured over MODELDOCK_MEMORY_BUDGET (their models evicted with reason drain)',
    registers: [this.registry],
  });

  readonly placementRefusals = new Counter({
    name: 'modeldock_shared_placement_refusals_total',
    help: 'Shared placements refused for memory, by reason (too_large, busy, would_evict_too_many)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly coldLoadDuration = new Histogram({
    name: 'modeldock_cold_load_duration_seconds',
    help: 'Loads on demand (a request found its job unloaded, evicted or idle-unloaded, and waited): from the request to the model ready',
    labelNames: ['placement'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'modeldock_' });
  }

  /** One routed inference request: counted by status class, its latency observed. */
  observeInference(jobId: string, statusCode: number, seconds: number): void {
    this.inferenceRequests.inc({ job: jobId, status: `${Math.floor(statusCode / 100)}xx` });
    this.inferenceLatency.observe({ job: jobId }, seconds);
  }

  private readonly serverStates = new Map<string, ServerState>();

  /** Keep `modeldock_servers{state}` current as servers change state. */
  trackServer(serverId: string, state: ServerState): void {
    const previous = this.serverStates.get(serverId);
    if (previous === state) return;
    if (previous) this.servers.dec({ state: previous });
    this.serverStates.set(serverId, state);
    this.servers.inc({ state });
  }

  /** Replace everything tracked with what the store says (start-up, reconcile passes). */
  resetServers(servers: readonly { serverId: string; state: ServerState }[]): void {
    this.serverStates.clear();
    for (const state of SERVER_STATES) this.servers.set({ state }, 0);
    for (const server of servers) this.trackServer(server.serverId, server.state);
  }

  /**
   * Replace the live servers tracked with `live` (every live record the store holds),
   * keeping the terminated ones as tracked: a reconcile pass reads only the live records.
   */
  resetLiveServers(live: readonly { serverId: string; state: ServerState }[]): void {
    const listed = new Set(live.map((s) => s.serverId));
    for (const [serverId, state] of this.serverStates) {
      if (state === 'terminated' || listed.has(serverId)) continue;
      // No longer live, and not seen terminating: gone from the count.
      this.servers.dec({ state });
      this.serverStates.delete(serverId);
    }
    for (const server of live) this.trackServer(server.serverId, server.state);
  }
}
