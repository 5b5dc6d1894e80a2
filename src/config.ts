/**
 * The one place that reads the environment. Everything else receives a Config.
 * All variables are optional; docs/configuration.md lists them.
 */
import path from 'node:path';

export type RuntimeChoice = 'auto' | 'docker' | 'process' | 'kubernetes';

/** MODELDOCK_RUNTIME=kubernetes (docs/runtime-kubernetes.md). */
export interface KubernetesConfig {
  namespace: string;
  /** `hostpath` (the models/datasets directories on the node) or `pvc:<claim>`. */
  store: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** Worker requests as a fraction of its limits. */
  requestsRatio: number;
  /** KUBECONFIG; empty: the client's default (~/.kube/config). */
  kubeconfig: string;
  /** KUBERNETES_SERVICE_HOST is set: this process runs in a Pod. */
  inCluster: boolean;
}

export interface Config {
  port: number;
  host: string;
  /** The gRPC inference service's port (on `host`); 0: no gRPC service. */
  grpcPort: number;
  /** `sqlite:<path>` or a `mongodb://` / `mongodb+srv://` URL. */
  store: string;
  runtime: RuntimeChoice;
  modelsDir: string;
  datasetsDir: string;
  /**
   * The example store baked into the router image (models/ and datasets/ below it): used
   * when the router runs in a container without a mounted store.
   */
  exampleStoreDir: string;
  /** Separates several modeldock installations on one engine: labels and worker names carry it. */
  instance: string;
  workerImage: string;
  /** The tag `modeldock images` builds the router image under. */
  routerImage: string;
  /** Docker network for workers; empty: the router's own network when it runs in a container. */
  network: string;
  workerMemoryBytes: number;
  workerCpus: number;
  workerPids: number;
  readyTimeoutMs: number;
  /** Largest request body the router accepts (infer payloads included). */
  bodyLimitBytes: number;
  reconcileIntervalMs: number;
  restartLimit: number;
  restartBackoffMs: number;
  /** Unload a model after this long without inference; 0 disables. */
  idleUnloadMs: number;
  /** Most models loaded at once across all servers; 0: no limit. */
  maxLoadedModels: number;
  /** Bytes all loaded models may take together (by their ONNX file sizes); 0: no budget. */
  memoryBudgetBytes: number;
  /** Started, model-less workers kept ready so DEPLOY_CREATE/TEMP skip container start; 0: off. */
  warmPoolSize: number;
  kubernetes: KubernetesConfig;
  /**
   * How long requests under way may take to finish before a model is unloaded, a worker
   * stopped, or the router exits on SIGTERM.
   */
  drainTimeoutMs: number;
  /** How long an inference request waits for its job's server to be loaded before a 503. */
  loadWaitMs: number;
  /** Most /v1/events streams open at once; past it a new one gets 429. */
  eventStreams: number;
  logLevel: string;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const int = (name: string, fallback: number, min = 0): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) {
      throw new ConfigError(`${name} must be an integer >= ${min}, got "${raw}"`);
    }
    return value;
  };
  const num = (name: string, fallback: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${name} must be a positive number`);
    return value;
  };
  const bytes = (name: string, fallback: number): number => {
    const raw = read(name);
    if (raw === undefined) return fallback;
    const parsed = parseBytes(raw);
    if (parsed === undefined) throw new ConfigError(`${name} must be a size like 512m or 2g, got "${raw}"`);
    return parsed;
  };

  const runtime = (read('MODELDOCK_RUNTIME') ?? 'auto') as RuntimeChoice;
  if (!['auto', 'docker', 'process', 'kubernetes'].includes(runtime)) {
    throw new ConfigError(`MODELDOCK_RUNTIME must be auto, docker, process or kubernetes, got "${runtime}"`);
  }
  const store = read('MODELDOCK_STORE') ?? 'sqlite:./data/modeldock.db';
  if (!/^(sqlite:|mongodb(\+srv)?:\/\/)/.test(store)) {
    throw new ConfigError(`MODELDOCK_STORE must be sqlite:<path> or a mongodb:// URL, got "${store}"`);
  }
  const instance = read('MODELDOCK_INSTANCE') ?? 'modeldock';
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(instance)) {
    throw new ConfigError('MODELDOCK_INSTANCE must be lowercase letters, digits and dashes (at most 31)');
  }

  return {
    port: int('MODELDOCK_PORT', 8080),
    host: read('MODELDOCK_HOST') ?? '0.0.0.0',
    grpcPort: int('MODELDOCK_GRPC_PORT', 8081),
    store,
    runtime,
    modelsDir: path.resolve(cwd, read('MODELDOCK_MODELS_DIR') ?? './models'),
    datasetsDir: path.resolve(cwd, read('MODELDOCK_DATASETS_DIR') ?? './datasets'),
    exampleStoreDir: read('MODELDOCK_EXAMPLE_STORE') ?? '',
    instance,
    workerImage: read('MODELDOCK_WORKER_IMAGE') ?? 'modeldock/worker:latest',
    routerImage: read('MODELDOCK_ROUTER_IMAGE') ?? 'modeldock/router:latest',
    network: read('MODELDOCK_NETWORK') ?? '',
    workerMemoryBytes: bytes('MODELDOCK_WORKER_MEMORY', 2 * 1024 ** 3),
    workerCpus: num('MODELDOCK_WORKER_CPUS', 1),
    workerPids: int('MODELDOCK_WORKER_PIDS', 256, 16),
    readyTimeoutMs: int('MODELDOCK_READY_TIMEOUT_MS', 60_000, 100),
    bodyLimitBytes: bytes('MODELDOCK_BODY_LIMIT', 16 * 1024 ** 2),
    reconcileIntervalMs: int('MODELDOCK_RECONCILE_INTERVAL_MS', 10_000, 100),
    restartLimit: int('MODELDOCK_RESTART_LIMIT', 3),
    restartBackoffMs: int('MODELDOCK_RESTART_BACKOFF_MS', 1_000),
    idleUnloadMs: int('MODELDOCK_IDLE_UNLOAD_SECONDS', 0) * 1000,
    maxLoadedModels: int('MODELDOCK_MAX_LOADED_MODELS', 0),
    memoryBudgetBytes: bytes('MODELDOCK_MEMORY_BUDGET', 0),
    warmPoolSize: int('MODELDOCK_WARM_POOL', 0),
    kubernetes: kubernetesConfig(read),
    drainTimeoutMs: int('MODELDOCK_DRAIN_TIMEOUT_MS', 30_000),
    loadWaitMs: int('MODELDOCK_LOAD_WAIT_MS', 60_000, 1),
    eventStreams: int('MODELDOCK_EVENT_STREAMS', 64, 1),
    logLevel: read('MODELDOCK_LOG_LEVEL') ?? 'info',
  };
}

function kubernetesConfig(read: (name: string) => string | undefined): KubernetesConfig {
  const namespace = read('MODELDOCK_K8S_NAMESPACE') ?? 'modeldock';
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    throw new ConfigError(`MODELDOCK_K8S_NAMESPACE must be a Kubernetes namespace name, got "${namespace}"`);
  }
  const store = read('MODELDOCK_K8S_STORE') ?? 'hostpath';
  if (!/^(hostpath|pvc:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)$/.test(store)) {
    throw new ConfigError(`MODELDOCK_K8S_STORE must be hostpath or pvc:<claim name>, got "${store}"`);
  }
  const imagePullPolicy = read('MODELDOCK_K8S_IMAGE_PULL_POLICY') ?? 'IfNotPresent';
  if (imagePullPolicy !== 'Always' && imagePullPolicy !== 'IfNotPresent' && imagePullPolicy !== 'Never') {
    throw new ConfigError(
      `MODELDOCK_K8S_IMAGE_PULL_POLICY must be Always, IfNotPresent or Never, got "${imagePullPolicy}"`,
    );
  }
  const ratio = Number(read('MODELDOCK_K8S_REQUESTS_RATIO') ?? '0.1');
  if (!Number.isFinite(ratio) || ratio <= 0 || ratio > 1) {
    throw new ConfigError('MODELDOCK_K8S_REQUESTS_RATIO must be a number in (0, 1]');
  }
  return {
    namespace,
    store,
    imagePullPolicy,
    requestsRatio: ratio,
    kubeconfig: read('KUBECONFIG') ?? '',
    inCluster: read('KUBERNETES_SERVICE_HOST') !== undefined,
  };
}

/** `512m`, `2g`, `1048576`, `64k` → bytes (binary units); undefined if unparseable. */
export function parseBytes(raw: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$/i.exec(raw.trim());
  if (!match) return undefined;
  const unit = (match[2] ?? 'b').toLowerCase()[0];
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.round(Number(match[1]) * factor);
}

/**
 * What the `modeldock` command reads for itself (not the router's settings): where the
 * router is, the key to send, and the terminal's colour preference.
 */
export interface ClientConfig {
  url: string;
  apiKey: string | undefined;
  /** NO_COLOR (https://no-color.org) or TERM=dumb → false, FORCE_COLOR → true; else ask the terminal. */
  colour: boolean | undefined;
}

export function loadClientConfig(env: Env = process.env): ClientConfig {
  const noColour = (env.NO_COLOR !== undefined && env.NO_COLOR !== '') || env.TERM === 'dumb';
  const forceColour = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0';
  return {
    url: env.MODELDOCK_URL || 'http://127.0.0.1:8080',
    apiKey: env.MODELDOCK_API_KEY || undefined,
    colour: noColour ? false : forceColour ? true : undefined,
  };
}
