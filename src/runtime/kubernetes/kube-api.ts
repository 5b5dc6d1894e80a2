/**
 * The Kubernetes API as the runtime uses it: one namespace's Pods through the official
 * client, with every failure turned into one typed error whose message names the fix
 * (no cluster reachable, credentials refused, RBAC forbidden, namespace missing). These
 * reach the caller as a 503 on the operation (RuntimeUnavailableError) or stop start-up
 * with the same line, never a crash.
 */
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Pod,
  type V1PodList,
} from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { ConflictError, RuntimeUnavailableError, errorMessage } from '../../errors.js';

/** Where the service account's credentials are mounted in a Pod. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * Whether a service account token is mounted (MODELDOCK_RUNTIME=auto picks Kubernetes
 * when it is and KUBERNETES_SERVICE_HOST is set, i.e. in a Pod that may use the API).
 */
export function hasServiceAccount(): boolean {
  return existsSync(`${SERVICE_ACCOUNT_DIR}/token`);
}

/**
 * The cluster's configuration: the in-cluster service account when running in a Pod,
 * else KUBECONFIG or ~/.kube/config (the client's own rules).
 */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const config = new KubeConfig();
  if (kubeconfigPath) config.loadFromFile(kubeconfigPath);
  else config.loadFromDefault();
  const cluster = config.getCurrentCluster();
  // With no kubeconfig and no service account, the client falls back to an insecure
  // http://localhost:8080 that no current cluster serves: say what is missing instead.
  const fallback = cluster?.name === 'cluster' && cluster.server === 'http://localhost:8080';
  if (!cluster || fallback) {
    throw new RuntimeUnavailableError(
      'no Kubernetes cluster configured: run the router in a Pod with a service account, or set KUBECONFIG (or ~/.kube/config)',
    );
  }
  return config;
}

export class KubeApi {
  readonly core: CoreV1Api;
  readonly watcher: Watch;
  readonly server: string;

  constructor(
    readonly config: KubeConfig,
    readonly namespace: string,
  ) {
    this.core = config.makeApiClient(CoreV1Api);
    this.watcher = new Watch(config);
    this.server = config.getCurrentCluster()?.server ?? '(no server)';
  }

  async listPods(labelSelector: string, signal?: AbortSignal): Promise<V1PodList> {
    return this.call(
      'list',
      () => this.core.listNamespacedPod({ namespace: this.namespace, labelSelector }),
      signal,
    );
  }

  /** Undefined when there is no such Pod. */
  async readPod(name: string, signal?: AbortSignal): Promise<V1Pod | undefined> {
    try {
      return await this.call(
        'get',
        () => this.core.readNamespacedPod({ name, namespace: this.namespace }),
        signal,
      );
    } catch (error) {
      if (error instanceof PodNotFound) return undefined;
      throw error;
    }
  }

  /** 'exists' when a Pod of that name is already there. */
  async createPod(
    pod: V1Pod,
    options: { dryRun?: boolean; signal?: AbortSignal } = {},
  ): Promise<V1Pod | 'exists'> {
    try {
      return await this.call(
        'create',
        () =>
          this.core.createNamespacedPod({
            namespace: this.namespace,
            body: pod,
            ...(options.dryRun ? { dryRun: 'All' } : {}),
          }),
        options.signal,
      );
    } catch (error) {
      if (error instanceof AlreadyExists) return 'exists';
      if (error instanceof PodNotFound) throw this.namespaceMissing();
      throw error;
    }
  }

  /** A JSON patch (RFC 6902); undefined when the Pod is gone. */
  async patchPod(name: string, patch: object[], signal?: AbortSignal): Promise<V1Pod | undefined> {
    try {
      return await this.call(
        'patch',
        () =>
          this.core.patchNamespacedPod(
            { name, namespace: this.namespace, body: patch },
            setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
          ),
        signal,
      );
    } catch (error) {
      if (error instanceof PodNotFound) return undefined;
      throw error;
    }
  }

  /** Idempotent: a missing Pod is fine. `uid` deletes only that incarnation of the name. */
  async deletePod(
    name: string,
    options: { graceSeconds: number; uid?: string; signal?: AbortSignal },
  ): Promise<void> {
    try {
      await this.call(
        'delete',
        () =>
          this.core.deleteNamespacedPod({
            name,
            namespace: this.namespace,
            gracePeriodSeconds: options.graceSeconds,
            ...(options.uid ? { body: { preconditions: { uid: options.uid } } } : {}),
          }),
        options.signal,
      );
    } catch (error) {
      // Gone already, or (uid precondition) replaced by a newer Pod of the same name.
      if (error instanceof PodNotFound || error instanceof ConflictError) return;
      throw error;
    }
  }

  async podLog(name: string, tailLines: number, signal?: AbortSignal): Promise<string> {
    try {
      return await this.call(
        'get logs of',
        () => this.core.readNamespacedPodLog({ name, namespace: this.namespace, tailLines }),
        signal,
      );
    } catch (error) {
      // A Pod whose container never started has no log yet.
      if (error instanceof ApiRefused && error.status === 400) return '';
      throw error;
    }
  }

  private async call<T>(verb: string, request: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw new RuntimeUnavailableError('aborted', { cause: signal.reason });
    try {
      return await request();
    } catch (error) {
      throw this.translate(verb, error);
    }
  }

  namespaceMissing(): RuntimeUnavailableError {
    return new RuntimeUnavailableError(
      `namespace ${this.namespace} does not exist: kubectl create namespace ${this.namespace} (or kubectl apply -k deploy/kubernetes, or set MODELDOCK_K8S_NAMESPACE)`,
    );
  }

  /** An API failure as one typed error with the fix in its message. */
  translate(verb: string, error: unknown): Error {
    if (!(error instanceof ApiException)) {
      return new RuntimeUnavailableError(
        `the Kubernetes API at ${this.server} does not answer (${errorMessage(error)}): start the cluster, or point KUBECONFIG at a reachable one`,
        { cause: error },
      );
    }
    const status = error.code;
    const message = apiMessage(error.body) ?? `HTTP ${status}`;
    if (status === 401) {
      return new RuntimeUnavailableError(
        `the Kubernetes API at ${this.server} refused modeldock's credentials (401 ${message}): check KUBECONFIG or the service account token`,
        { cause: error },
      );
    }
    if (status === 403) {
      return new RuntimeUnavailableError(
        `Kubernetes RBAC forbids modeldock to ${verb} pods in namespace ${this.namespace} (${message}): bind the Role of deploy/kubernetes (pods, pods/log, events) to the router's service account`,
        { cause: error },
      );
    }
    if (status === 404) return new PodNotFound(message);
    if (status === 409 && /already exists/i.test(message)) return new AlreadyExists(message);
    if (status === 409)
      return new ConflictError(`Kubernetes refused to ${verb} a pod: ${message}`, { cause: error });
    return new ApiRefused(
      status,
      `Kubernetes refused to ${verb} a pod in ${this.namespace} (${status}): ${message}`,
      error,
    );
  }
}

export class PodNotFound extends RuntimeUnavailableError {}
class AlreadyExists extends RuntimeUnavailableError {}
/** Any other refusal: 503 on the operation, with the API's own message. */
export class ApiRefused extends RuntimeUnavailableError {
  constructor(
    readonly status: number,
    message: string,
    cause: unknown,
  ) {
    super(message, { cause });
  }
}

function apiMessage(body: unknown): string | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.trim() || undefined;
    }
  }
  if (parsed && typeof parsed === 'object' && 'message' in parsed) {
    return String((parsed as { message: unknown }).message);
  }
  return undefined;
}
