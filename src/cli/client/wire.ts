/** The router's answers as the client commands read them (docs/api.md has them all). */

export interface ServerView {
  server_id: string;
  job_id: string;
  model: string;
  dataset: string;
  kind: string;
  state: string;
  reason: string | null;
  container_name: string;
  created_at: string;
  updated_at: string;
  last_used_at: string | null;
  terminated_at: string | null;
}

export interface JobView {
  job_id: string;
  model: string;
  dataset: string;
  state: string;
  server: ServerView | null;
  updated_at: string;
}

export interface OperationView {
  operation_id: string;
  type: string;
  job_id: string;
  server_id: string | null;
  status: string;
  warnings: string[];
  error: { code?: string; message?: string } | string | null;
  steps: { name: string; duration_ms: number | null }[];
  started_at: string;
  duration_ms: number | null;
}

export interface OutcomeView {
  operation: OperationView;
  server: ServerView | null;
  result?: unknown;
}

export interface WorkerSampleView {
  container_name: string;
  kind: string;
  job_id: string | null;
  server_id: string | null;
  state: string | null;
  model: string | null;
  cpu_percent: number | null;
  memory_bytes: number;
  memory_limit_bytes: number | null;
}

export type EventView =
  { type: 'server'; server: ServerView } | { type: 'operation'; operation: OperationView };
