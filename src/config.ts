/**
 * The one place that reads the environment. Everything else receives a Config.
 * All variables are optional; docs/configuration.md lists them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PLACEMENTS, type Placement } from './store/records.js';

export type RuntimeChoice = 'auto' | 'docker' | 'process' | 'kubernetes';
export type SqliteSynchronous = 'full' | 'normal';

/** MODELDOCK_RUNTIME=kubernetes (docs/runtime-kubernetes.md). */
export interface KubernetesConfig {
  namespace: string;
  /**
   * `hostpath` (the models/datasets directories on the node), `pvc:<claim>`, or `router`
   * (workers fetch their files from the router into a cache of their own).
   */
  store: string;
  /** With the `router` store: the router's URL as worker Pods reach it (MODELDOCK_K8S_ROUTER_URL). */
  routerUrl: string;
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
  /** Most gRPC calls at once on one connection (HTTP/2 streams). */
  grpcStreamsPerConnection: number;
  /** Most gRPC calls at once from one remote address. */
  grpcCallsPerPeer: number;
  /** How long a request's body (a gRPC call's message) may take to arrive. */
  bodyTimeoutMs: number;
  /** The state database (MODELDOCK_DATABASE): `sqlite:<path>` or a `mongodb://` / `mongodb+srv://` URL. */
  store: string;
  /**
   * SQLite's `synchronous` setting: `full` (default) fsyncs the WAL at every commit, so an
   * acknowledged answer survives power loss; `normal` does not (MODELDOCK_SQLITE_SYNCHRONOUS).
   */
  sqliteSynchronous: SqliteSynchronous;
  runtime: RuntimeChoice;
  modelsDir: string;
  datasetsDir: string;
  /** Operator entries of the serving-runtime catalog, one JSON file each (docs/runtimes.md). */
  runtimesDir: string;
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
  /** The image the built-in `mlserver` serving runtime runs on Docker (`modeldock images mlserver`). */
  mlserverImage: string;
  /** The image the built-in `triton` serving runtime runs on Docker (`modeldock images triton`). */
  tritonImage: string;
  /** Docker network for workers; empty: the router's own network when it runs in a container. */
  network: string;
  workerMemoryBytes: number;
  workerCpus: number;
  workerPids: number;
  readyTimeoutMs: number;
  /** Largest request body the router accepts (infer payloads included). */
  bodyLimitBytes: number;
  /** Request bytes held at once, per budget (inference; administration), at what holding them costs. */
  requestMemoryBytes: number;
  reconcileIntervalMs: number;
  restartLimit: number;
  restartBackoffMs: number;
  /**
   * A worker that ran this long before it died was healthy, not crash-looping: its
   * server's restart budget and back-off start over (as Kubernetes' back-off does).
   */
  restartResetMs: number;
  /** Unload a model after this long without inference; 0 disables. */
  idleUnloadMs: number;
  /** Most models loaded at once across all servers; 0: no limit. */
  maxLoadedModels: number;
  /** Bytes all loaded models may take together (by their ONNX file sizes); 0: no budget. */
  memoryBudgetBytes: number;
  /** Started, model-less workers kept ready so DEPLOY_CREATE/TEMP skip container start; 0: off. */
  warmPoolSize: number;
  /**
   * Idle foreign servers kept ready per serving runtime (catalog entry name → count), from
   * the `name=count` items of MODELDOCK_WARM_POOL; modeldock's own worker is `warmPoolSize`.
   */
  warmPoolRuntimes: Record<string, number>;
  kubernetes: KubernetesConfig;
  /**
   * How long requests under way may take to finish before a model is unloaded, a worker
   * stopped, or the router exits on SIGTERM.
   */
  drainTimeoutMs: number;
  /** How long an inference request waits for its job's server to be loaded before a 503. */
  loadWaitMs: number;
  /** In-flight requests per replica the autoscaler aims at (a job may set its own). */
  scaleTarget: number;
  /** How long demand must stay above a job's replicas before one is added. */
  scaleUpDelayMs: number;
  /** How long demand must stay below a job's replicas before one is removed (drained first). */
  scaleDownDelayMs: number;
  /** Most /v1/events streams open at once; past it a new one gets 429. */
  eventStreams: number;
  logLevel: string;
  auth: AuthConfig;
  /** Live servers (job and TEMP; warm-pool workers apart) the router keeps at most. */
  maxServers: number;
  /** Server creations run at once (beyond it they queue: the engine gains nothing from more). */
  createConcurrency: number;
  /** Shared placement (docs/operations.md "Shared placement"). */
  shared: SharedConfig;
  /** Creations that may wait for a slot; past it a create is answered 429. */
  createQueue: number;
}

export interface SharedConfig {
  /** Where a job's servers live when its request does not say (MODELDOCK_PLACEMENT). */
  placement: Placement;
  /** Jobs one shared worker hosts at most; past it the router opens another (MODELDOCK_SHARED_JOBS_PER_WORKER). */
  jobsPerWorker: number;
  /** Jobs loaded on shared workers at most, all together; past it DEPLOY_CREATE gets 429 (MODELDOCK_MAX_SHARED_JOBS). */
  maxJobs: number;
  /** How long a shared worker stays without jobs before it is closed (MODELDOCK_SHARED_IDLE_MS). */
  idleMs: number;
  /** A model loaded less than this ago is evicted only when nothing else can go (MODELDOCK_MIN_RESIDENCY_MS). */
  minResidencyMs: number;
  /** Share of MODELDOCK_MEMORY_BUDGET kept free ahead of need by evicting in the background (MODELDOCK_EVICTION_HEADROOM_PERCENT). */
  headroomPercent: number;
}

/**
 * Who may call the API. `keys`: every request but health needs a key; `off`: the
 * operator's explicit opt-out for a trusted network; `none`: no key configured, so the
 * router listens on loopback only and asks for none.
 */
export interface AuthConfig {
  mode: 'keys' | 'off' | 'none';
  /** Keys given inline (MODELDOCK_API_KEY / MODELDOCK_INFER_KEY). */
  adminKeys: string[];
  inferKeys: string[];
  /** Files of keys, one a line, re-read on SIGHUP (MODELDOCK_API_KEY_FILE / MODELDOCK_INFER_KEY_FILE). */
  adminKeyFile: string | undefined;
  inferKeyFile: string | undefined;
  /**
   * Where the router keeps the admin key it generates when none is configured (the router
   * image sets /data/api-key); undefined: never generate.
   */
  generatedKeyFile: string | undefined;
  /** `/metrics` answers without a key (a scraper on a trusted network). */
  metricsPublic: boolean;
}

/** The keys in force: inline ones plus the current content of the key files. */
export interface KeySet {
  admin: string[];
  infer: string[];
}

/** Keys shorter than this are refused: a key is a secret, not a password to remember. */
export const MIN_KEY_LENGTH = 16;

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
  const percent = (name: string, fallback: number, max: number): number => {
    const value = int(name, fallback, 0);
    if (value > max) throw new ConfigError(`${name} must be an integer from 0 to ${max}, got "${value}"`);
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
  // MODELDOCK_DATABASE was called MODELDOCK_STORE, a name too close to the model store's; the
  // old name still works, the new one wins when both are set.
  const databaseVariable =
    read('MODELDOCK_DATABASE') !== undefined ? 'MODELDOCK_DATABASE' : 'MODELDOCK_STORE';
  const store = read(databaseVariable) ?? 'sqlite:./data/modeldock.db';
  if (!/^(sqlite:|mongodb(\+srv)?:\/\/)/.test(store)) {
    throw new ConfigError(`${databaseVariable} must be sqlite:<path> or a mongodb:// URL, got "${store}"`);
  }
  const sqliteSynchronous = (read('MODELDOCK_SQLITE_SYNCHRONOUS') ?? 'full').toLowerCase();
  if (sqliteSynchronous !== 'full' && sqliteSynchronous !== 'normal') {
    throw new ConfigError(`MODELDOCK_SQLITE_SYNCHRONOUS must be full or normal, got "${sqliteSynchronous}"`);
  }
  const instance = read('MODELDOCK_INSTANCE') ?? 'modeldock';
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(instance)) {
    throw new ConfigError('MODELDOCK_INSTANCE must be lowercase letters, digits and dashes (at most 31)');
  }

  const auth = readAuth(read);
  const requested = read('MODELDOCK_HOST');
  // No key, no open port: without a key (and without the explicit opt-out) only this host may call.
  const host = requested ?? (auth.mode === 'none' ? '127.0.0.1' : '0.0.0.0');
  if (auth.mode === 'none' && !isLoopback(host)) {
    throw new ConfigError(
      `MODELDOCK_HOST=${host} would expose the API (and through it the Docker engine) without a key: ` +
        'set MODELDOCK_API_KEY (or MODELDOCK_API_KEY_FILE), or set MODELDOCK_AUTH=off to accept that on a trusted network',
    );
  }

  return {
    port: int('MODELDOCK_PORT', 8080),
    host,
    grpcPort: int('MODELDOCK_GRPC_PORT', 8081),
    grpcStreamsPerConnection: int('MODELDOCK_GRPC_STREAMS_PER_CONNECTION', 100, 1),
    grpcCallsPerPeer: int('MODELDOCK_GRPC_CALLS_PER_PEER', 256, 1),
    bodyTimeoutMs: int('MODELDOCK_BODY_TIMEOUT_MS', 60_000, 100),
    store,
    sqliteSynchronous,
    runtime,
    modelsDir: path.resolve(cwd, read('MODELDOCK_MODELS_DIR') ?? './models'),
    datasetsDir: path.resolve(cwd, read('MODELDOCK_DATASETS_DIR') ?? './datasets'),
    runtimesDir: path.resolve(cwd, read('MODELDOCK_RUNTIMES_DIR') ?? './runtimes'),
    exampleStoreDir: read('MODELDOCK_EXAMPLE_STORE') ?? '',
    instance,
    workerImage: read('MODELDOCK_WORKER_IMAGE') ?? 'modeldock/worker:latest',
    routerImage: read('MODELDOCK_ROUTER_IMAGE') ?? 'modeldock/router:latest',
    mlserverImage: read('MODELDOCK_MLSERVER_IMAGE') ?? 'modeldock/mlserver:latest',
    tritonImage: read('MODELDOCK_TRITON_IMAGE') ?? 'modeldock/triton:latest',
    network: read('MODELDOCK_NETWORK') ?? '',
    workerMemoryBytes: bytes('MODELDOCK_WORKER_MEMORY', 2 * 1024 ** 3),
    workerCpus: num('MODELDOCK_WORKER_CPUS', 1),
    workerPids: int('MODELDOCK_WORKER_PIDS', 256, 16),
    readyTimeoutMs: int('MODELDOCK_READY_TIMEOUT_MS', 60_000, 100),
    bodyLimitBytes: bytes('MODELDOCK_BODY_LIMIT', 16 * 1024 ** 2),
    requestMemoryBytes: bytes('MODELDOCK_REQUEST_MEMORY', 64 * 1024 ** 2),
    reconcileIntervalMs: int('MODELDOCK_RECONCILE_INTERVAL_MS', 10_000, 100),
    restartLimit: int('MODELDOCK_RESTART_LIMIT', 3),
    restartBackoffMs: int('MODELDOCK_RESTART_BACKOFF_MS', 1_000),
    restartResetMs: int('MODELDOCK_RESTART_RESET_MS', 600_000, 1),
    idleUnloadMs: int('MODELDOCK_IDLE_UNLOAD_SECONDS', 0) * 1000,
    maxLoadedModels: int('MODELDOCK_MAX_LOADED_MODELS', 0),
    memoryBudgetBytes: bytes('MODELDOCK_MEMORY_BUDGET', 0),
    ...readWarmPool(read('MODELDOCK_WARM_POOL')),
    kubernetes: kubernetesConfig(read, runtime, host),
    drainTimeoutMs: int('MODELDOCK_DRAIN_TIMEOUT_MS', 30_000),
    loadWaitMs: int('MODELDOCK_LOAD_WAIT_MS', 60_000, 1),
    scaleTarget: num('MODELDOCK_SCALE_TARGET', 4),
    scaleUpDelayMs: int('MODELDOCK_SCALE_UP_DELAY_MS', 1_000),
    scaleDownDelayMs: int('MODELDOCK_SCALE_DOWN_DELAY_MS', 30_000),
    eventStreams: int('MODELDOCK_EVENT_STREAMS', 64, 1),
    logLevel: read('MODELDOCK_LOG_LEVEL') ?? 'info',
    auth,
    maxServers: int('MODELDOCK_MAX_SERVERS', 64, 1),
    createConcurrency: int('MODELDOCK_CREATE_CONCURRENCY', 4, 1),
    createQueue: int('MODELDOCK_CREATE_QUEUE', 64, 0),
    shared: {
      placement: readPlacement(read('MODELDOCK_PLACEMENT')),
      jobsPerWorker: int('MODELDOCK_SHARED_JOBS_PER_WORKER', 100, 1),
      maxJobs: int('MODELDOCK_MAX_SHARED_JOBS', 10_000, 1),
      idleMs: int('MODELDOCK_SHARED_IDLE_MS', 60_000, 0),
      minResidencyMs: int('MODELDOCK_MIN_RESIDENCY_MS', 30_000, 0),
      headroomPercent: percent('MODELDOCK_EVICTION_HEADROOM_PERCENT', 5, 50),
    },
  };
}

/**
 * MODELDOCK_WARM_POOL: a count (modeldock's own worker, as always), or comma-separated
 * `entry=count` items, one per serving runtime (`2,mlserver=1`, `modeldock-onnx=2,triton=1`).
 * Whether each entry exists and can be started here is the catalog's to say (router.ts).
 */
export function readWarmPool(value: string | undefined): {
  warmPoolSize: number;
  warmPoolRuntimes: Record<string, number>;
} {
  const sizes: Record<string, number> = {};
  for (const item of (value ?? '')
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const match = /^(?:([a-z0-9][a-z0-9-]{0,62})=)?(\d+)$/.exec(item);
    if (!match) {
      throw new ConfigError(
        `MODELDOCK_WARM_POOL must be a count or entry=count items (e.g. 2,mlserver=1), got "${item}"`,
      );
    }
    const name = match[1] ?? DEFAULT_POOL_ENTRY;
    if (name in sizes) throw new ConfigError(`MODELDOCK_WARM_POOL names ${name} twice`);
    sizes[name] = Number(match[2]);
  }
  const { [DEFAULT_POOL_ENTRY]: own = 0, ...runtimes } = sizes;
  return { warmPoolSize: own, warmPoolRuntimes: runtimes };
}

/** The catalog entry of modeldock's own worker, which a bare MODELDOCK_WARM_POOL count sizes. */
const DEFAULT_POOL_ENTRY = 'modeldock-onnx';

function readPlacement(value: string | undefined): Placement {
  const placement = (value ?? 'dedicated').toLowerCase();
  if (!(PLACEMENTS as readonly string[]).includes(placement)) {
    throw new ConfigError(`MODELDOCK_PLACEMENT must be ${PLACEMENTS.join(' or ')}, got "${value}"`);
  }
  return placement as Placement;
}

function readAuth(read: (name: string) => string | undefined): AuthConfig {
  const switchValue = (read('MODELDOCK_AUTH') ?? 'on').toLowerCase();
  if (switchValue !== 'on' && switchValue !== 'off') {
    throw new ConfigError(`MODELDOCK_AUTH must be on or off, got "${switchValue}"`);
  }
  const metrics = (read('MODELDOCK_METRICS_PUBLIC') ?? 'false').toLowerCase();
  if (metrics !== 'true' && metrics !== 'false') {
    throw new ConfigError(`MODELDOCK_METRICS_PUBLIC must be true or false, got "${metrics}"`);
  }
  const inline = (name: string): string[] => {
    const key = read(name);
    if (key === undefined) return [];
    checkKey(name, key);
    return [key];
  };
  const adminKeys = inline('MODELDOCK_API_KEY');
  const inferKeys = inline('MODELDOCK_INFER_KEY');
  const adminKeyFile = read('MODELDOCK_API_KEY_FILE');
  const inferKeyFile = read('MODELDOCK_INFER_KEY_FILE');
  const configured =
    adminKeys.length + inferKeys.length > 0 || adminKeyFile !== undefined || inferKeyFile !== undefined;
  const off = switchValue === 'off';
  // Only a router with no key of its own and no opt-out makes one up.
  const generatedKeyFile = configured || off ? undefined : read('MODELDOCK_GENERATED_KEY_FILE');
  return {
    mode: off ? 'off' : configured || generatedKeyFile !== undefined ? 'keys' : 'none',
    adminKeys,
    inferKeys,
    adminKeyFile,
    inferKeyFile,
    generatedKeyFile,
    metricsPublic: metrics === 'true',
  };
}

function checkKey(source: string, key: string): void {
  if (key.length < MIN_KEY_LENGTH || /\s/.test(key)) {
    throw new ConfigError(
      `${source}: a key must be at least ${MIN_KEY_LENGTH} characters without spaces (e.g. \`openssl rand -hex 32\`)`,
    );
  }
}

/**
 * The keys in force now: inline keys plus every non-empty, non-comment line of the key
 * files (and of the generated key file, once it exists). Called at start-up and on SIGHUP,
 * so a file can gain the new key, clients move over, and the old line goes.
 */
export function readKeys(auth: AuthConfig): KeySet {
  const fromFile = (name: string, file: string | undefined): string[] => {
    if (file === undefined) return [];
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`${name}: cannot read ${file}: ${(error as Error).message}`);
    }
    const keys = text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    keys.forEach((key) => checkKey(`${name} (${file})`, key));
    return keys;
  };
  const keys = {
    admin: [
      ...auth.adminKeys,
      ...fromFile('MODELDOCK_API_KEY_FILE', auth.adminKeyFile),
      ...fromFile('MODELDOCK_GENERATED_KEY_FILE', auth.generatedKeyFile),
    ],
    infer: [...auth.inferKeys, ...fromFile('MODELDOCK_INFER_KEY_FILE', auth.inferKeyFile)],
  };
  if (auth.mode === 'keys' && keys.admin.length + keys.infer.length === 0) {
    throw new ConfigError('the configured key files hold no key: add one key a line');
  }
  return keys;
}

/** 127.0.0.0/8, ::1 and `localhost`: addresses only this host can reach. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    bare === 'localhost' ||
    bare === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare) ||
    bare === '::ffff:127.0.0.1'
  );
}

function kubernetesConfig(
  read: (name: string) => string | undefined,
  runtime: RuntimeChoice,
  host: string,
): KubernetesConfig {
  const namespace = read('MODELDOCK_K8S_NAMESPACE') ?? 'modeldock';
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    throw new ConfigError(`MODELDOCK_K8S_NAMESPACE must be a Kubernetes namespace name, got "${namespace}"`);
  }
  const store = read('MODELDOCK_K8S_STORE') ?? 'hostpath';
  if (!/^(hostpath|router|pvc:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)$/.test(store)) {
    throw new ConfigError(`MODELDOCK_K8S_STORE must be hostpath, router or pvc:<claim name>, got "${store}"`);
  }
  const routerUrl = read('MODELDOCK_K8S_ROUTER_URL') ?? '';
  if (store === 'router') {
    if (!/^https?:\/\/[^\s/]+(\/\S*)?$/.test(routerUrl)) {
      throw new ConfigError(
        `MODELDOCK_K8S_STORE=router needs MODELDOCK_K8S_ROUTER_URL, the router's URL as worker Pods reach it (e.g. http://10.244.0.1:8080), got "${routerUrl}"`,
      );
    }
    // Pods never reach a router on loopback; beyond it, a key is required (see MODELDOCK_HOST).
    if (runtime === 'kubernetes' && isLoopback(host)) {
      throw new ConfigError(
        `MODELDOCK_K8S_STORE=router: worker Pods cannot reach a router listening on ${host}; set MODELDOCK_HOST to an address on the pod network (with MODELDOCK_API_KEY)`,
      );
    }
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
    routerUrl,
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
