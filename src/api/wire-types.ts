/**
 * The router's answers on the wire (snake_case, stable names), declared once. The
 * presenters are typed against them, so the router cannot drift from what they say,
 * and the CLI and the web console read them from here instead of declaring their own.
 * No imports: the console compiles this file for the browser.
 */

export interface ServerView {
  server_id: string;
  number: number;
  job_id: string;
  model: string;
  dataset: string;
  /** `job` or `temp`. */
  kind: string;
  /** `dedicated` (container_name is the server's own worker) or `shared` (the shared worker it is loaded in). */
  placement: string;
  /** creating, loading, ready, unloading, unloaded, terminating, terminated, failed. */
  state: string;
  reason: string | null;
  runtime: string;
  container_name: string;
  container_id: string | null;
  endpoint: string | null;
  version: number;
  restarts: number;
  created_at: string;
  updated_at: string;
  loaded_at: string | null;
  last_used_at: string | null;
  terminated_at: string | null;
}

export interface OperationStepView {
  name: string;
  started_at: string;
  duration_ms: number | null;
}

export interface OperationView {
  operation_id: string;
  /** DEPLOY_CREATE, DEPLOY_LOAD, DEPLOY_UNLOAD, TERMINATE or TEMP. */
  type: string;
  job_id: string;
  server_id: string | null;
  /** running, succeeded or failed. */
  status: string;
  reason: string;
  /** `key-…`, `anonymous` or `system`. */
  caller: string;
  steps: OperationStepView[];
  warnings: string[];
  error: { code: string; message: string } | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
}

/** A job's replicas: its bounds, how many the router keeps now and how many serve. */
export interface ReplicasView {
  min: number;
  max: number;
  /** How many servers the router keeps for the job now (the autoscaler moves it within min..max). */
  desired: number;
  /** How many of them are ready and take requests. */
  ready: number;
  /** In-flight requests per replica the autoscaler aims at; null: the router's default. */
  scale_target: number | null;
}

export interface JobView {
  job_id: string;
  model: string;
  dataset: string;
  /** `dedicated` or `shared`: where its servers live. */
  placement: string;
  /** `ready` when any replica serves, else the first replica's state; `scaled_to_zero` or `none` without one. */
  state: string;
  replicas: ReplicasView;
  /** The server answers name: the first live one, else the last one. */
  server: ServerView | null;
  /** Every live server (replica) of the job. */
  servers: ServerView[];
  created_at: string;
  updated_at: string;
}

/** `POST /v1/jobs/…` operations and TEMP: the record, the server after it, TEMP's result. */
export interface OutcomeView {
  operation: OperationView;
  server: ServerView | null;
  /** Every server (replica) the operation acted on; absent for TEMP. */
  servers?: ServerView[];
  result?: unknown;
}

/** One serving runtime's warm pool: the configured size, the bound it keeps now and why. */
export interface RuntimePoolView {
  /** The catalog entry whose servers it holds (`modeldock-onnx`: modeldock's worker). */
  runtime: string;
  size: number;
  limit: number;
  /** `memory_budget`, `max_servers` (foreign servers' pools), or null. */
  bounded_by: string | null;
  ready: number;
  filling: number;
  worker_bytes: number;
  worker_bytes_measured: boolean;
  budget_free_bytes: number | null;
}

/** `GET /v1/pool`: modeldock's worker pool at the top (as before), every runtime's pool in `runtimes`. */
export interface PoolView extends RuntimePoolView {
  runtimes: RuntimePoolView[];
}

/** `GET /v1/stats`: one running worker. */
export interface WorkerSampleView {
  container_name: string;
  /** `job`, `temp` or `pool` (a warm spare not yet handed to a server). */
  kind: string;
  job_id: string | null;
  server_id: string | null;
  state: string | null;
  model: string | null;
  /** Percent of one CPU since the previous sample of this worker; null on the first. */
  cpu_percent: number | null;
  cpu_seconds: number;
  memory_bytes: number;
  memory_limit_bytes: number | null;
  sampled_at: string;
}

/** One message of `GET /v1/events`. */
export type EventView =
  { type: 'server'; server: ServerView } | { type: 'operation'; operation: OperationView };
