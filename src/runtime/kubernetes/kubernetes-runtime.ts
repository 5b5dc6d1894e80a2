/**
 * Runtime backend for a Kubernetes cluster: one Pod per worker in one namespace
 * (MODELDOCK_K8S_NAMESPACE), found by its labels (pod-labels.ts), shaped by pod-spec.ts,
 * read back by pod-status.ts, watched by pod-events.ts.
 *
 * How the Runtime interface maps onto Pods, whose containers start once and which
 * cannot be renamed:
 * - create: a Pod held by a scheduling gate (exists, not scheduled); start removes the gate.
 * - stop: the Pod's activeDeadlineSeconds is cut to 1, so the kubelet stops it the way
 *   it stops any Pod (SIGTERM, grace period, SIGKILL) and the Pod stays, ended, as a
 *   stopped container does.
 * - start of an ended worker: the same Pod (spec, labels, name) created again.
 * - rename: a worker's name is its `modeldock.io/name` label; renaming relabels the Pod.
 * - remove: delete, then wait until the Pod has left the API.
 * The router reaches a worker at its Pod IP (pod-status.ts says why not a Service).
 */
import { Log, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { PassThrough } from 'node:stream';
import type { Logger } from 'pino';
import { ConflictError, InvalidInputError, RuntimeUnavailableError } from '../../errors.js';
import {
  type LogOptions,
  type Runtime,
  type RuntimeEvent,
  type WorkerInfo,
  type WorkerSpec,
  type WorkerStats,
} from '../runtime.js';
import { textChunks } from '../text-chunks.js';
import { WorkerClient } from '../worker-client.js';
import { KubeApi } from './kube-api.js';
import { watchPodEvents } from './pod-events.js';
import { NAME_LABEL, WORKER_NAME, ownerSelector } from './pod-labels.js';
import {
  WORKER_CONTAINER,
  podForRestart,
  secretOfPod,
  workerPod,
  type PodTemplateOptions,
  type WorkerStore,
} from './pod-spec.js';
import { isGated, podState, toWorkerInfo as describePod } from './pod-status.js';

export interface KubernetesRuntimeOptions {
  config: KubeConfig;
  namespace: string;
  instance: string;
  image: string;
  imagePullPolicy: PodTemplateOptions['imagePullPolicy'];
  store: WorkerStore;
  /** Requests as a fraction of the limits (see pod-spec.ts). */
  requestsRatio: number;
  logger?: Logger;
  /** How long start() waits for a Pod's container to run (scheduling, image, sandbox). */
  startTimeoutMs?: number;
}

/** How often a wait for a Pod's next state reads it (start, stop, remove). */
const POLL_MS = 50;
/** The kubelet's grace for a stopping worker: SIGTERM, then SIGKILL after this. */
const GRACE_SECONDS = 10;

export class KubernetesRuntime implements Runtime {
  readonly kind = 'kubernetes' as const;
  readonly api: KubeApi;
  readonly instance: string;
  private readonly template: PodTemplateOptions;
  /** Endpoint → secret of the running workers seen last (see Runtime.workerSecret). */
  private readonly secrets = new Map<string, string>();
  /** For stats: the worker's own measurement (see stats()). */
  private readonly workers = new WorkerClient({ secretOf: (endpoint) => this.secrets.get(endpoint) });

  constructor(private readonly options: KubernetesRuntimeOptions) {
    this.api = new KubeApi(options.config, options.namespace);
    this.instance = options.instance;
    this.template = {
      namespace: options.namespace,
      instance: options.instance,
      image: options.image,
      imagePullPolicy: options.imagePullPolicy,
      store: options.store,
      requestsRatio: options.requestsRatio,
      terminationGraceSeconds: GRACE_SECONDS,
    };
  }

  async ping(signal?: AbortSignal): Promise<void> {
    await this.api.listPods(ownerSelector(this.options.instance, 'ping'), signal);
  }

  /**
   * Checks, once at start-up, everything a worker Pod needs from the cluster: the API
   * answers, the namespace exists, RBAC lets modeldock create Pods, admission accepts
   * the worker's Pod (a server-side dry run: nothing is created).
   */
  async prepare(onProgress?: (line: string) => void): Promise<void> {
    await this.ping();
    const probe = workerPod(
      {
        name: `${this.options.instance}-preflight`,
        labels: {},
        limits: { memoryBytes: 64 * 1024 ** 2, nanoCpus: 1e8, pids: 64 },
      },
      this.template,
    );
    await this.api.createPod(probe, { dryRun: true });
    onProgress?.(
      `kubernetes: ${this.api.server}, namespace ${this.options.namespace}: worker pods can be created (image ${this.options.image})`,
    );
  }

  async create(spec: WorkerSpec, signal?: AbortSignal): Promise<WorkerInfo> {
    if (!WORKER_NAME.test(spec.name))
      throw new InvalidInputError(`invalid worker name ${JSON.stringify(spec.name)}`);
    // A foreign server runs here from an image of its own, with the guard in front.
    if (spec.server && !spec.serverImage)
      throw new InvalidInputError(`the ${this.kind} runtime runs a foreign server only from an image`);
    const existing = await this.findPod(spec.name, signal);
    if (existing) return this.toWorkerInfo(existing);
    const created = await this.api.createPod(workerPod(spec, this.template), { signal });
    if (created === 'exists') {
      // Lost a race with another creator, or the name is taken by a Pod that is not ours.
      const winner = await this.findPod(spec.name, signal);
      if (winner) return this.toWorkerInfo(winner);
      throw new ConflictError(
        `a pod named ${spec.name} exists in ${this.options.namespace} and is not this modeldock's`,
      );
    }
    return this.toWorkerInfo(created);
  }

  async start(name: string, signal?: AbortSignal): Promise<WorkerInfo> {
    let pod = await this.requirePod(name, signal);
    const info = this.toWorkerInfo(pod);
    if (info.running) return info;
    if (info.status === 'removing') throw new ConflictError(`worker ${name} is being removed`);
    if (info.status === 'exited') {
      pod = await this.recreate(pod, signal);
    } else if (isGated(pod)) {
      const patched = await this.api.patchPod(
        podName(pod),
        [
          { op: 'test', path: '/metadata/uid', value: pod.metadata!.uid },
          { op: 'remove', path: '/spec/schedulingGates' },
        ],
        signal,
      );
      if (!patched) throw new ConflictError(`worker ${name} was removed while starting`);
      pod = patched;
    }
    return this.waitForStart(name, podName(pod), pod.metadata!.uid!, signal);
  }

  async stop(name: string, options?: { timeoutSeconds?: number; signal?: AbortSignal }): Promise<void> {
    const pod = await this.findPod(name, options?.signal);
    if (!pod || isGated(pod) || podState(pod).status === 'exited') return;
    const uid = pod.metadata!.uid!;
    await this.api.patchPod(
      podName(pod),
      [
        { op: 'test', path: '/metadata/uid', value: uid },
        { op: 'add', path: '/spec/activeDeadlineSeconds', value: 1 },
      ],
      options?.signal,
    );
    const timeoutMs = ((options?.timeoutSeconds ?? GRACE_SECONDS) + 30) * 1000;
    await this.waitFor(podName(pod), uid, timeoutMs, options?.signal, (current) =>
      !current || podState(current).status === 'exited' ? true : undefined,
    );
  }

  async remove(name: string, signal?: AbortSignal): Promise<void> {
    const pod = await this.findPod(name, signal);
    if (!pod) return;
    await this.deleteAndWait(pod, signal);
  }

  async inspect(name: string, signal?: AbortSignal): Promise<WorkerInfo | undefined> {
    const pod = await this.findPod(name, signal);
    return pod ? this.toWorkerInfo(pod) : undefined;
  }

  async list(signal?: AbortSignal): Promise<WorkerInfo[]> {
    const pods = await this.api.listPods(ownerSelector(this.options.instance), signal);
    return pods.items.map((pod) => this.toWorkerInfo(pod));
  }

  events(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    return watchPodEvents(this.api, {
      labelSelector: ownerSelector(this.options.instance),
      signal,
      ...(this.options.logger ? { logger: this.options.logger } : {}),
    });
  }

  async logs(name: string, options?: { tail?: number; signal?: AbortSignal }): Promise<string> {
    const pod = await this.requirePod(name, options?.signal);
    return this.api.podLog(podName(pod), options?.tail ?? 200, options?.signal);
  }

  async openLogs(name: string, options?: LogOptions): Promise<AsyncIterable<string>> {
    const signal = options?.signal;
    const pod = await this.requirePod(name, signal);
    const container = pod.status?.containerStatuses?.find((c) => c.name === WORKER_CONTAINER);
    // A container that never started has printed nothing (and has no log to open yet).
    const tail = options?.tail ?? 200;
    const follow = options?.follow ?? false;
    if (!container?.state?.running && !container?.state?.terminated)
      return textChunks(new PassThrough().end());
    // The client drops tailLines=0 (it reads as "unset": the whole log). No history asked
    // for, so none read; with follow, only what comes from now on.
    if (tail === 0 && !follow) return textChunks(new PassThrough().end());
    const stream = new PassThrough();
    let controller: AbortController;
    try {
      controller = await new Log(this.options.config).log(
        this.options.namespace,
        podName(pod),
        WORKER_CONTAINER,
        stream,
        {
          follow,
          ...(tail === 0 ? { sinceTime: new Date().toISOString() } : { tailLines: tail }),
        },
      );
    } catch (error) {
      throw this.api.translate('get logs of', error);
    }
    // The kubelet ends a followed log when the container stops; an abort ends it here.
    signal?.addEventListener('abort', () => setImmediate(() => (controller.abort(), stream.end())), {
      once: true,
    });
    return textChunks(stream, signal);
  }

  /**
   * CPU and memory as the worker measures itself (/v2/worker/stats: process CPU time and
   * resident memory): the namespaced Role reads no node or metrics API, so this works on
   * any cluster without metrics-server. The limit is the Pod's.
   */
  async stats(name: string, signal?: AbortSignal): Promise<WorkerStats | undefined> {
    const pod = await this.findPod(name, signal);
    if (!pod) return undefined;
    const info = this.toWorkerInfo(pod);
    if (!info.running || !info.endpoint) return undefined;
    const own = await this.workers.stats(info.endpoint, signal).catch(() => undefined);
    if (!own || own.cpu_seconds === undefined) return undefined;
    const limit = pod.spec?.containers.find((c) => c.name === WORKER_CONTAINER)?.resources?.limits?.memory;
    return {
      cpuSeconds: own.cpu_seconds,
      memoryBytes: own.rss_bytes,
      memoryLimitBytes: limit !== undefined && /^\d+$/.test(limit) ? Number(limit) : null,
      time: Date.now(),
    };
  }

  /** A Pod cannot be renamed: the worker's name is a label, so it is relabelled. */
  async rename(name: string, newName: string, signal?: AbortSignal): Promise<WorkerInfo> {
    if (!WORKER_NAME.test(newName))
      throw new InvalidInputError(`invalid worker name ${JSON.stringify(newName)}`);
    const pod = await this.requirePod(name, signal);
    if (await this.findPod(newName, signal))
      throw new ConflictError(`a worker named ${newName} exists already`);
    const patched = await this.api.patchPod(
      podName(pod),
      [
        { op: 'test', path: '/metadata/uid', value: pod.metadata!.uid },
        { op: 'replace', path: `/metadata/labels/${NAME_LABEL.replace('/', '~1')}`, value: newName },
      ],
      signal,
    );
    if (!patched) throw new ConflictError(`worker ${name} was removed while being renamed`);
    return this.toWorkerInfo(patched);
  }

  workerSecret(endpoint: string): string | undefined {
    return this.secrets.get(endpoint);
  }

  async close(): Promise<void> {
    // Workers outlive the router by design; only the stats client's connections close.
    await this.workers.close();
  }

  /** A Pod as a WorkerInfo, noting the secret of a running one for its endpoint. */
  private toWorkerInfo(pod: V1Pod): WorkerInfo {
    const info = describePod(pod);
    const secret = secretOfPod(pod);
    if (info.endpoint && secret) this.secrets.set(info.endpoint, secret);
    return info;
  }

  /** This instance's Pod for a worker name: the live one if several (one being deleted). */
  private async findPod(name: string, signal?: AbortSignal): Promise<V1Pod | undefined> {
    if (!WORKER_NAME.test(name)) return undefined;
    const pods = (await this.api.listPods(ownerSelector(this.options.instance, name), signal)).items;
    return pods.find((p) => !p.metadata?.deletionTimestamp) ?? pods[0];
  }

  private async requirePod(name: string, signal?: AbortSignal): Promise<V1Pod> {
    const pod = await this.findPod(name, signal);
    if (!pod) throw new ConflictError(`no modeldock worker named ${name} exists`);
    return pod;
  }

  /** The same Pod once more (containers never start twice under restartPolicy Never). */
  private async recreate(pod: V1Pod, signal?: AbortSignal): Promise<V1Pod> {
    await this.deleteAndWait(pod, signal);
    const created = await this.api.createPod(podForRestart(pod), { signal });
    if (created === 'exists')
      throw new ConflictError(`worker ${pod.metadata?.name} was created again meanwhile`);
    return created;
  }

  private async deleteAndWait(pod: V1Pod, signal?: AbortSignal): Promise<void> {
    const uid = pod.metadata!.uid!;
    const state = podState(pod);
    // An ended or never scheduled Pod has nothing to stop; a live one gets a short grace
    // so the kubelet tears it down (and its network) before it leaves the API.
    const graceSeconds = state.status === 'exited' || isGated(pod) ? 0 : 1;
    await this.api.deletePod(podName(pod), { graceSeconds, uid, ...(signal ? { signal } : {}) });
    await this.waitFor(podName(pod), uid, 60_000, signal, (current) => (current ? undefined : true));
  }

  private async waitForStart(
    name: string,
    pod: string,
    uid: string,
    signal?: AbortSignal,
  ): Promise<WorkerInfo> {
    return this.waitFor(pod, uid, this.options.startTimeoutMs ?? 120_000, signal, (current) => {
      if (!current) throw new ConflictError(`worker ${name} was removed while starting`);
      const info = this.toWorkerInfo(current);
      if (info.running || info.status === 'exited') return info;
      const state = podState(current);
      if (state.stuck) throw new RuntimeUnavailableError(state.error!);
      return undefined;
    });
  }

  /**
   * Reads the Pod (this incarnation: `uid`) until `check` returns a value; `current` is
   * undefined once it is gone. A timeout is a RuntimeUnavailableError naming the Pod.
   */
  private async waitFor<T>(
    pod: string,
    uid: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    check: (current: V1Pod | undefined) => T | undefined,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: V1Pod | undefined;
    for (;;) {
      const read = await this.api.readPod(pod, signal);
      last = read?.metadata?.uid === uid ? read : undefined;
      const result = check(last);
      if (result !== undefined) return result;
      if (signal?.aborted) throw new RuntimeUnavailableError(`waiting for pod ${pod} was aborted`);
      if (Date.now() > deadline) {
        const phase = last?.status?.phase ?? 'gone';
        throw new RuntimeUnavailableError(
          `pod ${pod} in ${this.options.namespace} did not get there within ${Math.round(timeoutMs / 1000)} s (phase ${phase}): kubectl -n ${this.options.namespace} describe pod ${pod}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
}

function podName(pod: V1Pod): string {
  return pod.metadata!.name!;
}
