/**
 * Where inference workers run. One interface, several backends (docker/, process/,
 * kubernetes/), one conformance suite: test/contract/runtime.contract.ts.
 *
 * A runtime only ever sees and touches workers it owns: those carrying
 * `modeldock.managed=true` and this router's `modeldock.instance` label. Everything
 * else is invisible to list/inspect and refused by the mutating calls.
 */

export const LABELS = {
  managed: 'modeldock.managed',
  instance: 'modeldock.instance',
  server: 'modeldock.server',
  job: 'modeldock.job',
  model: 'modeldock.model',
  /** The job's dataset: with job and model, what adoption rebuilds a lost record from. */
  dataset: 'modeldock.dataset',
  kind: 'modeldock.kind',
  /** The serving runtime (catalog entry) the worker runs, e.g. `modeldock-onnx`, `mlserver`. */
  servingRuntime: 'modeldock.serving-runtime',
} as const;

export interface WorkerLimits {
  memoryBytes: number;
  /** CPU quota in units of 1e-9 CPUs (Docker's NanoCpus). */
  nanoCpus: number;
  pids: number;
}

/**
 * A server other than modeldock's worker, as the process runtime runs it (a serving
 * runtime's `process` entry, docs/runtimes.md). In `args` and `env` values the runtime
 * fills in `{host}`, `{port}` (the HTTP port the router calls), `{grpcPort}`,
 * `{metricsPort}` (free ports of their own), `{modelsDir}` and `{datasetsDir}`.
 */
export interface ServerCommand {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * A server other than modeldock's worker, as Docker and Kubernetes run it: its image,
 * which must hold modeldock's guard (`node /app/guard.mjs`, src/worker/guard-main.ts;
 * images built FROM modeldock's worker image do), the command that starts the server in
 * it (placeholders as in ServerCommand) and the ports it listens on there. The runtime
 * runs the guard on the worker's port in front of it (docs/runtimes.md).
 */
export interface ServerImage {
  image: string;
  command: ServerCommand;
  ports: { http: number; grpc?: number };
  /** A directory on a tmpfs of its own that allows exec (the entry's `execDir`). */
  execDir?: string;
}

export interface WorkerSpec {
  /** Deterministic name derived from the server number, e.g. `modeldock-inf-0001`. */
  name: string;
  /** Our labels (server, job, model, kind); the runtime adds managed and instance. */
  labels: Record<string, string>;
  limits: WorkerLimits;
  env?: Record<string, string>;
  /** Run this server instead of modeldock's worker on the process runtime. */
  server?: ServerCommand;
  /** Run this server instead of modeldock's worker in a container (Docker). */
  serverImage?: ServerImage;
  /**
   * A foreign server for the warm pool: started with an empty model repository, which its
   * guard may link models of the store into (src/worker/guard-repository.ts), so the
   * runtime lets the guard see the model store. Otherwise the repository holds the job's
   * model alone, under the job's name.
   */
  emptyRepository?: boolean;
}

export type WorkerStatus = 'created' | 'running' | 'restarting' | 'paused' | 'exited' | 'dead' | 'removing';

export interface WorkerInfo {
  /** Runtime id: container id, service id, or `pid:<pid>:<start time>`. */
  id: string;
  name: string;
  labels: Record<string, string>;
  status: WorkerStatus;
  running: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  /** Runtime-reported error for a worker that failed to start or died. */
  error: string | null;
  /** Base URL of the worker's HTTP API, reachable from the router; null unless running. */
  endpoint: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export type RuntimeEventType = 'create' | 'start' | 'die' | 'oom' | 'stop' | 'destroy';

export interface RuntimeEvent {
  type: RuntimeEventType;
  /** Worker name. */
  name: string;
  labels: Record<string, string>;
  exitCode?: number;
  /** Milliseconds since the epoch. */
  time: number;
}

export interface LogOptions {
  /** Lines from the end of what the worker printed so far (default 200). */
  tail?: number;
  /** Keep the stream open and pass new output on until the worker stops or the signal aborts. */
  follow?: boolean;
  signal?: AbortSignal;
}

/** One measurement of a running worker (`modeldock top`, the console). */
export interface WorkerStats {
  /**
   * CPU time the worker has used since it started, user and system, in seconds: a
   * counter, so that callers take the CPU share between two measurements.
   */
  cpuSeconds: number;
  /** Memory in use (resident, without reclaimable page cache). */
  memoryBytes: number;
  /** The limit the worker runs under, when the runtime enforces one. */
  memoryLimitBytes: number | null;
  /** When it was measured, ms since the epoch. */
  time: number;
}

export interface Runtime {
  readonly kind: 'docker' | 'process' | 'kubernetes';
  /** Throws RuntimeUnavailableError when the backend does not answer. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Make sure workers can be created (e.g. build the worker image); reports progress lines. */
  prepare(onProgress?: (line: string) => void): Promise<void>;
  /** Idempotent by name: an owned worker of that name is returned as it is. */
  create(spec: WorkerSpec, signal?: AbortSignal): Promise<WorkerInfo>;
  /** Idempotent: starting a running worker returns it. The result carries the endpoint. */
  start(name: string, signal?: AbortSignal): Promise<WorkerInfo>;
  /** Idempotent: a stopped or missing worker is fine. */
  stop(name: string, options?: { timeoutSeconds?: number; signal?: AbortSignal }): Promise<void>;
  /** Idempotent: a missing worker is fine. Removes a running worker too. */
  remove(name: string, signal?: AbortSignal): Promise<void>;
  /** Undefined if no owned worker has that name. */
  inspect(name: string, signal?: AbortSignal): Promise<WorkerInfo | undefined>;
  list(signal?: AbortSignal): Promise<WorkerInfo[]>;
  /**
   * Events about owned workers until the signal aborts. Implementations reconnect by
   * themselves (resuming from the last event seen) when their source breaks.
   */
  events(signal: AbortSignal): AsyncIterable<RuntimeEvent>;
  logs(name: string, options?: { tail?: number; signal?: AbortSignal }): Promise<string>;
  /**
   * The worker's output as a stream of text chunks (not necessarily whole lines): the
   * last `tail` lines, then with `follow` what it prints next, ending when the worker
   * stops or the signal aborts. Rejects (before any output) when no owned worker has
   * that name, like logs().
   */
  openLogs(name: string, options?: LogOptions): Promise<AsyncIterable<string>>;
  /** CPU and memory of a running worker; undefined when it is not running or not ours. */
  stats(name: string, signal?: AbortSignal): Promise<WorkerStats | undefined>;
  /**
   * Give a running worker another name (the warm pool hands a started worker to a new
   * server under the server's deterministic name): afterwards every call finds it by the
   * new name only. Each runtime does it its own way: Docker renames the container,
   * Kubernetes relabels the Pod (a Pod cannot be renamed; its worker name is a label).
   * Optional: runtimes without it get no warm pool.
   */
  rename?(name: string, newName: string, signal?: AbortSignal): Promise<WorkerInfo>;
  /**
   * The secret the running worker at `endpoint` obeys (MODELDOCK_WORKER_SECRET of its
   * environment), as this runtime last saw the worker (create, start, inspect, list). The
   * worker client sends it with every call; a runtime that cannot say gets 401s.
   */
  workerSecret?(endpoint: string): string | undefined;
  close(): Promise<void>;
}
