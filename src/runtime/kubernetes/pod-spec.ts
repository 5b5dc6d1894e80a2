/**
 * The Pod a worker runs in, from a WorkerSpec: the same hardening as the Docker runtime's
 * container (non-root, read-only root filesystem, no capabilities, no privilege
 * escalation, seccomp RuntimeDefault) plus what only a cluster offers to take away (no
 * service-account token, no Service environment variables).
 *
 * - restartPolicy Never: whether a dead worker comes back is modeldock's decision (the
 *   reconciler restarts with back-off and a limit and records why); a kubelet restarting
 *   it too would fight that and hide crashes from it.
 * - Created with a scheduling gate: the Runtime interface creates a worker first and
 *   starts it later. A gated Pod exists (it is listed, labelled, idempotent by name) but
 *   is not scheduled; start() removes the gate.
 * - Requests are a fraction of the limits (MODELDOCK_K8S_REQUESTS_RATIO): limits are the
 *   ceiling a worker may use, requests what the scheduler reserves. Requests equal to
 *   limits would fit one 1-CPU worker per core, far fewer than an idle-heavy fleet needs.
 * - Kubernetes has no per-Pod process limit (the kubelet's podPidsLimit is per node), so
 *   WorkerLimits.pids is not applied here.
 * - A foreign server (WorkerSpec.serverImage) runs in the same Pod, hardened the same way,
 *   from its own image: the guard on the worker's port in front of the server, which
 *   listens on the Pod's loopback only (foreign-container.ts).
 */
import path from 'node:path';
import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import {
  GUARD_FETCH_AS_ENV,
  GUARD_FETCH_MAX_BYTES_ENV,
  GUARD_FETCH_MODEL_ENV,
  GUARD_STORE_URL_ENV,
} from '../../guard-repository-protocol.js';
import { WORKER_BODY_LIMIT_ENV, workerBodyLimit } from '../../worker-limits.js';
import { WORKER_SECRET_ENV, withWorkerSecret } from '../../worker-secret.js';
import { STORE_CACHE_DIR_ENV, STORE_URL_ENV } from '../../worker-store-protocol.js';
import {
  SERVER_REPOSITORY,
  foreignContainer,
  pooledForeignContainer,
  type ForeignContainer,
} from '../foreign-container.js';
import { LABELS, type WorkerSpec } from '../runtime.js';
import { LABELS_ANNOTATION, podLabels } from './pod-labels.js';

/** Port the worker listens on inside its Pod. */
export const WORKER_PORT = 8000;
export const WORKER_CONTAINER = 'worker';
/** start() removes this gate; until then the Pod is created, not scheduled. */
export const START_GATE = 'modeldock.io/start';
const WORKER_UID = 10001;
/** Where a pooled foreign server's guard sees the model store (read-only), as modeldock's worker does. */
const POOLED_STORE = '/models';

/**
 * Where the worker's models and datasets come from (MODELDOCK_K8S_STORE):
 * - hostPath: directories on the node (the router on a node, or a store every node has);
 * - pvc: one PersistentVolumeClaim with `models/` and `datasets/` in it, mounted read-only;
 * - router: nothing mounted; the worker fetches its files from the router at `url`
 *   (worker-store-protocol.ts) into an emptyDir cache of its own.
 */
export type WorkerStore =
  | { type: 'hostPath'; modelsDir: string; datasetsDir: string }
  | { type: 'pvc'; claim: string }
  | { type: 'router'; url: string };

/** A store the Pod mounts (hostPath or a claim), as opposed to the router's. */
type MountedStore = Exclude<WorkerStore, { type: 'router' }>;

export interface PodTemplateOptions {
  namespace: string;
  instance: string;
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  store: WorkerStore;
  /** requests = limits × this (0 < ratio ≤ 1). */
  requestsRatio: number;
  terminationGraceSeconds: number;
}

export function workerPod(spec: WorkerSpec, options: PodTemplateOptions): V1Pod {
  const labels = { ...spec.labels, [LABELS.managed]: 'true', [LABELS.instance]: options.instance };
  const { limits } = spec;
  const cpuMilli = Math.max(1, Math.round(limits.nanoCpus / 1e6));
  // Never a worker open by accident: a spec without a secret gets one here. It is in
  // the Pod's environment, readable by whoever may read Pods in the namespace (the
  // router's Role; an operator's), as it is in a container's on Docker.
  const foreign = spec.serverImage ? foreignServer(spec, options.store, limits.memoryBytes) : undefined;
  const env = withWorkerSecret({
    MODELDOCK_WORKER_PORT: String(WORKER_PORT),
    // A foreign server fetching from the router's store is told only its repository (its guard fetches).
    ...(foreign && options.store.type === 'router' ? {} : storeEnv(options.store)),
    MODELDOCK_WORKER_NAME: spec.name,
    [WORKER_BODY_LIMIT_ENV]: String(workerBodyLimit(limits.memoryBytes)),
    ...spec.env,
    ...foreign?.env,
  });
  const { volumes, mounts } = foreign ?? storeVolumes(options.store, limits.memoryBytes);
  // A foreign server's image runs its guard, which starts the server (foreign-container.ts).
  const run: Partial<V1Container> = foreign
    ? { command: foreign.entrypoint, args: foreign.args, workingDir: '/tmp' }
    : {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: spec.name,
      namespace: options.namespace,
      labels: podLabels(labels, spec.name),
      annotations: { [LABELS_ANNOTATION]: JSON.stringify(labels) },
    },
    spec: {
      restartPolicy: 'Never',
      schedulingGates: [{ name: START_GATE }],
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // The sandbox's init is PID 1 and reaps orphans (as Docker's --init does for a worker
      // container). Without it the worker or a foreign server's guard is PID 1, and Node.js
      // never waits for a process it did not start: every orphan left by a server (MLServer
      // and Triton start processes of their own) would stay a zombie for the Pod's life.
      shareProcessNamespace: true,
      terminationGracePeriodSeconds: options.terminationGraceSeconds,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: WORKER_UID,
        runAsGroup: WORKER_UID,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: WORKER_CONTAINER,
          image: spec.serverImage?.image ?? options.image,
          imagePullPolicy: options.imagePullPolicy,
          ...run,
          env: Object.entries(env).map(([name, value]) => ({ name, value })),
          ports: [{ name: 'http', containerPort: WORKER_PORT, protocol: 'TCP' }],
          resources: {
            limits: { cpu: `${cpuMilli}m`, memory: String(limits.memoryBytes) },
            requests: {
              cpu: `${Math.max(1, Math.round(cpuMilli * options.requestsRatio))}m`,
              memory: String(Math.max(1, Math.round(limits.memoryBytes * options.requestsRatio))),
            },
          },
          // For the cluster's view (kubectl, a Service someone adds); the router itself
          // waits on the same endpoint directly, which answers sooner than a probe period.
          readinessProbe: {
            httpGet: { path: '/v2/health/ready', port: WORKER_PORT },
            periodSeconds: 2,
            timeoutSeconds: 2,
            failureThreshold: 2,
          },
          securityContext: {
            runAsNonRoot: true,
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            privileged: false,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: [...mounts, { name: 'tmp', mountPath: '/tmp' }],
        },
      ],
      volumes: [...volumes, { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } }],
    },
  };
}

/** Where the worker finds its store: the mounted directories, or the router and its cache. */
function storeEnv(store: WorkerStore): Record<string, string> {
  if (store.type === 'router') return { [STORE_URL_ENV]: store.url, [STORE_CACHE_DIR_ENV]: CACHE_DIR };
  return { MODELDOCK_MODELS_DIR: '/models', MODELDOCK_DATASETS_DIR: '/datasets' };
}

const CACHE_DIR = '/cache';

/**
 * The most a worker fetches from the router's store: on the node's disk, not in memory (a
 * model may be large), and bounded: a worker loads at most what fits in its memory, plus
 * a dataset, plus the version being replaced.
 */
function fetchedBytes(memoryBytes: number): number {
  return 2 * memoryBytes;
}

function storeVolumes(
  store: WorkerStore,
  memoryBytes: number,
): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  if (store.type === 'router') {
    return {
      volumes: [{ name: 'cache', emptyDir: { sizeLimit: String(fetchedBytes(memoryBytes)) } }],
      mounts: [{ name: 'cache', mountPath: CACHE_DIR }],
    };
  }
  if (store.type === 'pvc') {
    return {
      volumes: [{ name: 'store', persistentVolumeClaim: { claimName: store.claim, readOnly: true } }],
      mounts: [
        { name: 'store', mountPath: '/models', subPath: 'models', readOnly: true },
        { name: 'store', mountPath: '/datasets', subPath: 'datasets', readOnly: true },
      ],
    };
  }
  return {
    volumes: [
      { name: 'models', hostPath: { path: store.modelsDir, type: 'Directory' } },
      { name: 'datasets', hostPath: { path: store.datasetsDir, type: 'Directory' } },
    ],
    mounts: [
      { name: 'models', mountPath: '/models', readOnly: true },
      { name: 'datasets', mountPath: '/datasets', readOnly: true },
    ],
  };
}

/**
 * A foreign server's guard and server (foreign-container.ts) and its volumes: for one job
 * (its model as the repository), or for the warm pool (an empty repository the guard puts
 * a model into).
 */
function foreignServer(spec: WorkerSpec, store: WorkerStore, memoryBytes: number) {
  const execDir = spec.serverImage?.execDir;
  if (store.type === 'router') return fetchingForeignServer(spec, store.url, memoryBytes, execDir);
  if (spec.emptyRepository) {
    return {
      ...pooledForeignContainer(spec, WORKER_PORT, POOLED_STORE),
      ...pooledVolumes(store, execDir),
    };
  }
  const container = foreignContainer(spec, WORKER_PORT);
  return { ...container, ...foreignVolumes(container, store, execDir) };
}

/**
 * A foreign server with the router's store, where nothing of the store is mounted: its
 * repository is an emptyDir on the node's disk (bounded as modeldock's worker's cache is),
 * and its guard fetches the model's directory from the router into it
 * (worker/model-dir-fetch.ts): a server for one job's before the server starts, a pooled
 * server's when it is handed a job. The router reads the dataset of a TEMP on a foreign
 * server itself, so no datasets are mounted either.
 */
function fetchingForeignServer(
  spec: WorkerSpec,
  url: string,
  memoryBytes: number,
  execDir: string | undefined,
) {
  const forJob = spec.emptyRepository ? undefined : foreignContainer(spec, WORKER_PORT);
  const container = forJob ?? pooledForeignContainer(spec, WORKER_PORT, undefined);
  const bytes = fetchedBytes(memoryBytes);
  const env: Record<string, string> = {
    ...container.env,
    [GUARD_STORE_URL_ENV]: url,
    [GUARD_FETCH_MAX_BYTES_ENV]: String(bytes),
    ...(forJob ? { [GUARD_FETCH_MODEL_ENV]: forJob.model, [GUARD_FETCH_AS_ENV]: forJob.job } : {}),
  };
  const exec = execVolumes(execDir);
  return {
    ...container,
    env,
    volumes: [{ name: 'repository', emptyDir: { sizeLimit: String(bytes) } }, ...exec.volumes],
    mounts: [{ name: 'repository', mountPath: SERVER_REPOSITORY }, ...exec.mounts],
  };
}

/**
 * A foreign server's volumes: its repository, the job's model directory alone mounted
 * read-only at `/repository/<job>`, the datasets, and, when its entry asks for one
 * (`execDir`), a small memory-backed directory of its own for programs it copies there
 * and runs (Triton's Python backend), as the Docker runtime's exec tmpfs.
 */
function foreignVolumes(
  foreign: ForeignContainer,
  store: MountedStore,
  execDir: string | undefined,
): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const exec = execVolumes(execDir);
  if (store.type === 'pvc') {
    return {
      volumes: [
        { name: 'store', persistentVolumeClaim: { claimName: store.claim, readOnly: true } },
        ...exec.volumes,
      ],
      mounts: [
        {
          name: 'store',
          mountPath: foreign.repositoryPath,
          subPath: path.posix.join('models', foreign.model),
          readOnly: true,
        },
        { name: 'store', mountPath: '/datasets', subPath: 'datasets', readOnly: true },
        ...exec.mounts,
      ],
    };
  }
  return {
    volumes: [
      {
        name: 'repository',
        hostPath: { path: path.join(store.modelsDir, foreign.model), type: 'Directory' },
      },
      { name: 'datasets', hostPath: { path: store.datasetsDir, type: 'Directory' } },
      ...exec.volumes,
    ],
    mounts: [
      { name: 'repository', mountPath: foreign.repositoryPath, readOnly: true },
      { name: 'datasets', mountPath: '/datasets', readOnly: true },
      ...exec.mounts,
    ],
  };
}

/**
 * A pooled foreign server's volumes (WorkerSpec.emptyRepository): its repository an empty
 * memory-backed directory its guard links the model of the job it is handed to into, the
 * store read-only where the guard sees it (as modeldock's worker mounts it), and its
 * entry's exec directory.
 */
function pooledVolumes(
  store: MountedStore,
  execDir: string | undefined,
): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const stored = storeVolumes(store, 0);
  const exec = execVolumes(execDir);
  return {
    volumes: [
      ...stored.volumes,
      { name: 'repository', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
      ...exec.volumes,
    ],
    mounts: [...stored.mounts, { name: 'repository', mountPath: SERVER_REPOSITORY }, ...exec.mounts],
  };
}

/** The entry's exec directory (`execDir`), if it asks for one: memory-backed and bounded, as /tmp is. */
function execVolumes(execDir: string | undefined): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  if (!execDir) return { volumes: [], mounts: [] };
  return {
    volumes: [{ name: 'exec', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } }],
    mounts: [{ name: 'exec', mountPath: execDir }],
  };
}

/**
 * The Pod to create again for a worker that has ended (a Pod's containers never start
 * twice under restartPolicy Never): its own spec, with the name label it has now, no
 * gate (it is being started), and nothing the cluster filled in.
 */
export function podForRestart(pod: V1Pod): V1Pod {
  const spec = { ...pod.spec! };
  delete spec.schedulingGates;
  delete spec.nodeName;
  delete spec.activeDeadlineSeconds;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: pod.metadata!.name!,
      namespace: pod.metadata!.namespace!,
      labels: { ...pod.metadata!.labels },
      annotations: { ...pod.metadata!.annotations },
    },
    spec,
  };
}

/** The secret a worker Pod's container obeys (its MODELDOCK_WORKER_SECRET). */
export function secretOfPod(pod: V1Pod): string | undefined {
  const container = pod.spec?.containers.find((c) => c.name === WORKER_CONTAINER);
  return container?.env?.find((e) => e.name === WORKER_SECRET_ENV)?.value;
}
