/**
 * Runtime backend for one Docker engine: one container per worker.
 *
 * Every container carries our labels and a deterministic name; list/inspect/events only
 * ever see containers with `modeldock.managed=true` and this instance's label, and the
 * mutating calls refuse a name that belongs to a container without them.
 */
import path from 'node:path';
import Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { ConflictError, InvalidInputError, RuntimeUnavailableError } from '../../errors.js';
import {
  LABELS,
  type Runtime,
  type RuntimeEvent,
  type RuntimeEventType,
  type WorkerInfo,
  type WorkerSpec,
  type WorkerStatus,
  type LogOptions,
  type WorkerStats,
} from '../runtime.js';
import { DockerEngine, type ContainerDetails } from './docker-engine.js';
import { subscribeEngineEvents } from './docker-events.js';
import { ensureImage, imageExists } from './image-builder.js';
import { SERVER_REPOSITORY, foreignContainer, pooledForeignContainer } from '../foreign-container.js';
import { textChunks } from '../text-chunks.js';
import { WORKER_BODY_LIMIT_ENV, workerBodyLimit } from '../../worker-limits.js';
import { withWorkerSecret } from '../../worker-secret.js';

/** Docker's own rule for container names; anything else never reaches a URL path. */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const CONTAINER_ID = /^[0-9a-f]{12,64}$/;

/** Port the worker (or a foreign server's guard) listens on inside its container. */
export const WORKER_PORT = 8000;

/** Where a pooled foreign server's guard sees the model store (read-only), as modeldock's worker does. */
const POOLED_STORE = '/models';

/**
 * How the router reaches workers and how stores reach them.
 * - `host`: the router runs on the engine's host; workers publish their port on
 *   127.0.0.1 and the stores are bind-mounted from the given host paths.
 * - `network`: the router runs in a container on `network`; workers join it and are
 *   reached by name; nothing is published. Store sources are given as the engine sees
 *   them (host paths or volume names), see self-container.ts.
 */
export type WorkerPlacement = { mode: 'host' } | { mode: 'network'; network: string };

export interface StoreMountSource {
  /** `bind`: `source` is a path on the engine's host; `volume`: a named volume. */
  type: 'bind' | 'volume';
  source: string;
  /** A folder inside the volume to mount instead of its root (Engine 26 and later). */
  subpath?: string;
}

export interface DockerRuntimeOptions {
  docker?: Dockerode;
  instance: string;
  image: string;
  /** Where the model store is, as the engine sees it (a host path unless given as a mount). */
  modelsDir: string | StoreMountSource;
  datasetsDir: string | StoreMountSource;
  placement?: WorkerPlacement;
  logger?: Logger;
  /** Build the worker image in prepare() when it is missing (default true). */
  buildImageIfMissing?: boolean;
}

const ACTIONS: Record<string, RuntimeEventType> = {
  create: 'create',
  start: 'start',
  die: 'die',
  oom: 'oom',
  stop: 'stop',
  destroy: 'destroy',
};

export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const;
  readonly engine: DockerEngine;
  private readonly ownerLabels: string[];
  private readonly placement: WorkerPlacement;
  /** Endpoint → secret of the running workers seen last (see Runtime.workerSecret). */
  private readonly secrets = new Map<string, string>();

  constructor(private readonly options: DockerRuntimeOptions) {
    this.engine = new DockerEngine(options.docker ?? new Dockerode());
    this.ownerLabels = [`${LABELS.managed}=true`, `${LABELS.instance}=${options.instance}`];
    this.placement = options.placement ?? { mode: 'host' };
  }

  ping(signal?: AbortSignal): Promise<void> {
    return this.engine.ping(signal);
  }

  async prepare(onProgress?: (line: string) => void): Promise<void> {
    await this.ping();
    if (this.options.buildImageIfMissing === false) return;
    await ensureImage(this.engine.docker, 'worker', this.options.image, onProgress);
  }

  async create(spec: WorkerSpec, signal?: AbortSignal): Promise<WorkerInfo> {
    if (!CONTAINER_NAME.test(spec.name))
      throw new InvalidInputError(`invalid worker name ${JSON.stringify(spec.name)}`);
    // A foreign server runs here from an image of its own, with the guard in front.
    if (spec.server && !spec.serverImage)
      throw new InvalidInputError(`the ${this.kind} runtime runs a foreign server only from an image`);
    const existing = await this.inspectOwned(spec.name, signal);
    if (existing) return existing;
    if (spec.serverImage && !(await imageExists(this.engine.docker, spec.serverImage.image))) {
      throw new InvalidInputError(
        `image ${spec.serverImage.image} is missing: build it (modeldock images) or load it into this engine`,
      );
    }
    const result = await this.engine.create(this.containerOptions(spec), signal);
    if (result.outcome === 'exists') {
      // Lost a race with another creator, or the name is taken by a foreign container.
      const winner = await this.inspectOwned(spec.name, signal);
      if (winner) return winner;
      throw new ConflictError(`a container named ${spec.name} exists and is not managed by modeldock`);
    }
    const created = await this.inspectOwned(spec.name, signal);
    if (!created) throw new RuntimeUnavailableError(`container ${spec.name} vanished right after creation`);
    return created;
  }

  async start(name: string, signal?: AbortSignal): Promise<WorkerInfo> {
    const owned = await this.requireOwned(name, signal);
    if (!owned.running) {
      let outcome = await this.engine.start(owned.id, signal);
      if (outcome === 'stale_task') {
        // Workers hold nothing of their own: a container the engine cannot start again
        // (docker-engine.ts) is replaced by an identical one under the same name.
        this.options.logger?.warn(
          { worker: name, container: owned.id },
          'the engine cannot start this container again (a task of it outlived an engine restart); recreating it',
        );
        outcome = await this.engine.start(await this.engine.recreate(owned.id, signal), signal);
        if (outcome === 'stale_task') {
          throw new RuntimeUnavailableError(`container ${name} cannot be started even after being recreated`);
        }
      }
      if (outcome === 'not_found') throw new ConflictError(`container ${name} was removed while starting`);
    }
    return this.requireOwned(name, signal);
  }

  async stop(name: string, options?: { timeoutSeconds?: number; signal?: AbortSignal }): Promise<void> {
    const owned = await this.inspectOwned(name, options?.signal);
    if (!owned) return;
    await this.engine.stop(owned.id, options?.timeoutSeconds ?? 10, options?.signal);
  }

  async remove(name: string, signal?: AbortSignal): Promise<void> {
    const owned = await this.inspectOwned(name, signal);
    if (!owned) return;
    await this.engine.remove(owned.id, signal);
  }

  async inspect(name: string, signal?: AbortSignal): Promise<WorkerInfo | undefined> {
    return this.inspectOwned(name, signal);
  }

  async list(signal?: AbortSignal): Promise<WorkerInfo[]> {
    const summaries = await this.engine.list(this.ownerLabels, signal);
    const infos = await Promise.all(summaries.map((s) => this.inspectOwned(s.id, signal)));
    return infos.filter((info): info is WorkerInfo => info !== undefined);
  }

  async *events(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    for await (const event of subscribeEngineEvents(this.engine, {
      labels: this.ownerLabels,
      signal,
      ...(this.options.logger ? { logger: this.options.logger } : {}),
    })) {
      const type = ACTIONS[event.action];
      if (!type) continue;
      yield {
        type,
        name: event.name,
        labels: event.labels,
        ...(event.exitCode !== undefined ? { exitCode: event.exitCode } : {}),
        time: Number(event.timeNano / 1_000_000n),
      };
    }
  }

  async logs(name: string, options?: { tail?: number; signal?: AbortSignal }): Promise<string> {
    const owned = await this.requireOwned(name, options?.signal);
    return (await this.engine.logs(owned.id, options?.tail ?? 200, options?.signal)) ?? '';
  }

  async openLogs(name: string, options?: LogOptions): Promise<AsyncIterable<string>> {
    const owned = await this.requireOwned(name, options?.signal);
    const stream = await this.engine.logStream(owned.id, {
      tail: options?.tail ?? 200,
      follow: options?.follow ?? false,
      ...(options?.signal ? { signal: options.signal } : {}),
    });
    if (!stream) throw new ConflictError(`no modeldock worker named ${name} exists`);
    return textChunks(stream, options?.signal);
  }

  async stats(name: string, signal?: AbortSignal): Promise<WorkerStats | undefined> {
    const owned = await this.inspectOwned(name, signal);
    if (!owned?.running) return undefined;
    const sample = await this.engine.stats(owned.id, signal);
    if (!sample) return undefined;
    return {
      cpuSeconds: sample.cpuNanos / 1e9,
      memoryBytes: sample.memoryBytes,
      memoryLimitBytes: sample.memoryLimitBytes,
      time: Date.now(),
    };
  }

  async rename(name: string, newName: string, signal?: AbortSignal): Promise<WorkerInfo> {
    if (!CONTAINER_NAME.test(newName))
      throw new InvalidInputError(`invalid worker name ${JSON.stringify(newName)}`);
    const owned = await this.requireOwned(name, signal);
    await this.engine.rename(owned.id, newName, signal);
    return this.requireOwned(newName, signal);
  }

  workerSecret(endpoint: string): string | undefined {
    return this.secrets.get(endpoint);
  }

  async close(): Promise<void> {
    // Nothing to release: workers outlive the router by design.
  }

  /** Kill a worker the way a crash would (tests and fault injection). */
  async kill(name: string): Promise<void> {
    const owned = await this.requireOwned(name);
    await this.engine.kill(owned.id);
  }

  private async requireOwned(name: string, signal?: AbortSignal): Promise<WorkerInfo> {
    const owned = await this.inspectOwned(name, signal);
    if (!owned) throw new ConflictError(`no modeldock worker named ${name} exists`);
    return owned;
  }

  private async inspectOwned(idOrName: string, signal?: AbortSignal): Promise<WorkerInfo | undefined> {
    if (!CONTAINER_NAME.test(idOrName) && !CONTAINER_ID.test(idOrName)) return undefined;
    const details = await this.engine.inspect(idOrName, signal);
    if (!details || !this.isOwned(details)) return undefined;
    return this.toWorkerInfo(details);
  }

  private isOwned(details: ContainerDetails): boolean {
    return (
      details.labels[LABELS.managed] === 'true' && details.labels[LABELS.instance] === this.options.instance
    );
  }

  private toWorkerInfo(details: ContainerDetails): WorkerInfo {
    const endpoint = details.running ? this.endpointOf(details) : null;
    if (endpoint && details.workerSecret) this.secrets.set(endpoint, details.workerSecret);
    return {
      id: details.id,
      name: details.name,
      labels: details.labels,
      status: details.status as WorkerStatus,
      running: details.running,
      exitCode: details.exitCode,
      oomKilled: details.oomKilled,
      error: details.error,
      endpoint,
      startedAt: details.startedAt,
      finishedAt: details.finishedAt,
    };
  }

  private endpointOf(details: ContainerDetails): string | null {
    if (this.placement.mode === 'network') return `http://${details.name}:${WORKER_PORT}`;
    const binding = details.publishedPorts[`${WORKER_PORT}/tcp`]?.find((b) => b.hostPort > 0);
    return binding ? `http://127.0.0.1:${binding.hostPort}` : null;
  }

  private containerOptions(spec: WorkerSpec): Dockerode.ContainerCreateOptions {
    const labels = {
      ...spec.labels,
      [LABELS.managed]: 'true',
      [LABELS.instance]: this.options.instance,
    };
    const foreign = spec.serverImage ? foreignServer(spec, this.options.modelsDir) : undefined;
    // Never a worker open by accident: a spec without a secret gets one here.
    const env = Object.entries(
      withWorkerSecret({
        MODELDOCK_WORKER_PORT: String(WORKER_PORT),
        MODELDOCK_MODELS_DIR: '/models',
        MODELDOCK_DATASETS_DIR: '/datasets',
        MODELDOCK_WORKER_NAME: spec.name,
        [WORKER_BODY_LIMIT_ENV]: String(workerBodyLimit(spec.limits.memoryBytes)),
        ...spec.env,
        ...foreign?.env,
      }),
    ).map(([key, value]) => `${key}=${value}`);
    const hostConfig: Dockerode.HostConfig = {
      Mounts: [
        ...(foreign?.repository ? [foreign.repository] : [storeMount(this.options.modelsDir, POOLED_STORE)]),
        storeMount(this.options.datasetsDir, '/datasets'),
      ],
      Memory: spec.limits.memoryBytes,
      // No swap beyond the memory limit: an oversized model fails fast and visibly (OOM).
      MemorySwap: spec.limits.memoryBytes,
      NanoCpus: spec.limits.nanoCpus,
      PidsLimit: spec.limits.pids,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Tmpfs: {
        '/tmp': 'rw,noexec,nosuid,size=64m',
        // A pooled server's repository: empty, writable by the guard, which links models in.
        ...(foreign && !foreign.repository
          ? { [SERVER_REPOSITORY]: 'rw,noexec,nosuid,nodev,size=1m,uid=10001,gid=10001,mode=0700' }
          : {}),
        // Only where the entry asks for it, and only that directory: programs it may run.
        ...(spec.serverImage?.execDir
          ? { [spec.serverImage.execDir]: 'rw,exec,nosuid,nodev,size=64m,uid=10001,gid=10001,mode=0700' }
          : {}),
      },
      // Restarts are the reconciler's decision (with back-off and a limit), not the engine's.
      RestartPolicy: { Name: 'no' },
      Init: true,
    };
    if (this.placement.mode === 'host') {
      hostConfig.PortBindings = { [`${WORKER_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] };
    } else {
      hostConfig.NetworkMode = this.placement.network;
    }
    return {
      name: spec.name,
      Image: spec.serverImage?.image ?? this.options.image,
      ...(foreign ? { Entrypoint: foreign.entrypoint, Cmd: foreign.cmd, WorkingDir: '/tmp' } : {}),
      Labels: labels,
      Env: env,
      User: '10001:10001',
      ExposedPorts: { [`${WORKER_PORT}/tcp`]: {} },
      HostConfig: hostConfig,
    };
  }
}

/**
 * A foreign server's container (foreign-container.ts): the guard's command and
 * environment, and the job's model directory mounted read-only as its repository. A
 * pooled server's (spec.emptyRepository) is an empty tmpfs instead (containerOptions),
 * and its guard sees the model store read-only at POOLED_STORE, to link the model of the
 * job it is handed to.
 */
function foreignServer(spec: WorkerSpec, modelsDir: string | StoreMountSource) {
  if (spec.emptyRepository) {
    const pooled = pooledForeignContainer(spec, WORKER_PORT, POOLED_STORE);
    return { entrypoint: pooled.entrypoint, cmd: pooled.args, repository: undefined, env: pooled.env };
  }
  const foreign = foreignContainer(spec, WORKER_PORT);
  return {
    entrypoint: foreign.entrypoint,
    cmd: foreign.args,
    repository: jobModelMount(modelsDir, foreign.model, foreign.repositoryPath),
    env: foreign.env,
  };
}

/** The job's model directory of the store, read-only at `target` (`/repository/<job>`). */
function jobModelMount(
  modelsDir: string | StoreMountSource,
  model: string,
  target: string,
): Dockerode.MountSettings {
  const mount: StoreMountSource =
    typeof modelsDir === 'string' ? { type: 'bind', source: modelsDir } : modelsDir;
  const modelMount: StoreMountSource =
    mount.type === 'bind'
      ? { type: 'bind', source: path.join(mount.source, model) }
      : { ...mount, subpath: path.posix.join(mount.subpath ?? '', model) };
  return storeMount(modelMount, target);
}

function storeMount(source: string | StoreMountSource, target: string): Dockerode.MountSettings {
  const mount: StoreMountSource = typeof source === 'string' ? { type: 'bind', source } : source;
  return {
    Type: mount.type,
    Source: mount.source,
    Target: target,
    ReadOnly: true,
    // VolumeOptions.Subpath (API 1.45); the typings predate it.
    ...(mount.subpath
      ? { VolumeOptions: { Subpath: mount.subpath } as Dockerode.MountSettings['VolumeOptions'] }
      : {}),
  };
}
