/**
 * The only module that talks to dockerode. It returns our own types, passes abort
 * signals through, and turns the engine's 304/404/409 answers into outcomes, so that
 * callers can make stop/remove idempotent without inspecting status codes.
 */
import { WORKER_SECRET_ENV } from '../../worker-secret.js';
import type Dockerode from 'dockerode';
import { PassThrough, type Readable } from 'node:stream';
import { ConflictError, ModeldockError, RuntimeUnavailableError, errorMessage } from '../../errors.js';

export interface ContainerSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  state: string;
}

export interface ContainerDetails {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  status: string;
  running: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** Host port bound for each `port/proto`, when published. */
  publishedPorts: Record<string, { hostIp: string; hostPort: number }[]>;
  /** Networks the container is attached to, by name. */
  networks: string[];
  mounts: { type: string; source: string; destination: string; name: string | null }[];
  /** MODELDOCK_WORKER_SECRET from the container's environment, when it has one. */
  workerSecret?: string;
}

export interface EngineEvent {
  action: string;
  id: string;
  name: string;
  labels: Record<string, string>;
  exitCode?: number;
  timeNano: bigint;
}

type DockerError = Error & {
  statusCode?: number;
  code?: string;
  reason?: string;
  json?: { message?: string };
};

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

/** Map a dockerode failure to a domain error; engine-down errors become RuntimeUnavailableError. */
export function engineError(error: unknown, action: string): ModeldockError {
  if (error instanceof ModeldockError) return error;
  const err = error as DockerError;
  if (err?.name === 'AbortError') return new RuntimeUnavailableError(`${action}: aborted`, { cause: error });
  if (err?.code && UNAVAILABLE_CODES.has(err.code)) {
    return new RuntimeUnavailableError(`Docker engine unavailable (${action}: ${err.code})`, {
      cause: error,
    });
  }
  const message = err?.json?.message ?? err?.reason ?? errorMessage(error);
  if (err?.statusCode === 409) return new ConflictError(`${action}: ${message}`, { cause: error });
  if (err?.statusCode !== undefined && err.statusCode >= 500) {
    return new RuntimeUnavailableError(`Docker engine error (${action}): ${message}`, { cause: error });
  }
  return new ModeldockError('internal', `${action}: ${message}`, { cause: error });
}

function statusOf(error: unknown): number | undefined {
  return (error as DockerError)?.statusCode;
}

/** The engine's answer to a start while containerd still holds a task of the container. */
export function isStaleTaskError(error: unknown): boolean {
  return statusOf(error) === 500 && /\btask [0-9a-f]{64}: already exists/.test(messageOf(error));
}

function messageOf(error: unknown): string {
  const err = error as DockerError;
  return err?.json?.message ?? err?.reason ?? errorMessage(error);
}

/** The networks a container is attached to, as a create body names them (aliases kept, addresses not). */
function endpointsOf(info: Dockerode.ContainerInspectInfo): Record<string, Dockerode.EndpointSettings> {
  const endpoints: Record<string, Dockerode.EndpointSettings> = {};
  for (const [network, settings] of Object.entries(info.NetworkSettings?.Networks ?? {})) {
    endpoints[network] = settings.Aliases ? { Aliases: settings.Aliases } : {};
  }
  return endpoints;
}

export class DockerEngine {
  constructor(readonly docker: Dockerode) {}

  async ping(signal?: AbortSignal): Promise<void> {
    try {
      // The typings lack the options overload that dockerode accepts.
      const docker = this.docker as unknown as { ping(o: { abortSignal?: AbortSignal }): Promise<unknown> };
      await docker.ping({ abortSignal: signal });
    } catch (error) {
      throw new RuntimeUnavailableError(`Docker engine unavailable: ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }

  /** Creates the container; `exists` when a container of that name is already there. */
  async create(
    options: Dockerode.ContainerCreateOptions,
    signal?: AbortSignal,
  ): Promise<{ outcome: 'created'; id: string } | { outcome: 'exists' }> {
    try {
      const container = await this.docker.createContainer({ ...options, abortSignal: signal });
      return { outcome: 'created', id: container.id };
    } catch (error) {
      if (statusOf(error) === 409) return { outcome: 'exists' };
      throw engineError(error, `create container ${options.name ?? ''}`);
    }
  }

  /**
   * `stale_task`: the engine can never start this container again, because containerd
   * still holds a task under its id. That happens when a start raced the engine's own
   * shutdown (the task outlived the engine, and the restarted engine did not clean it
   * up: "Container not cleaned up from containerd from previous run"). Recreating the
   * container (a new id) is the way out.
   */
  async start(
    idOrName: string,
    signal?: AbortSignal,
  ): Promise<'started' | 'already_running' | 'not_found' | 'stale_task'> {
    try {
      await this.docker.getContainer(idOrName).start({ abortSignal: signal });
      return 'started';
    } catch (error) {
      if (statusOf(error) === 304) return 'already_running';
      if (statusOf(error) === 404) return 'not_found';
      if (isStaleTaskError(error)) return 'stale_task';
      throw engineError(error, `start ${idOrName}`);
    }
  }

  /**
   * Replace a stopped container by a new one with the same name and configuration
   * (the engine's own record of it: image, environment, labels, host configuration and
   * networks), and return the new id. Only for containers that cannot be started again.
   */
  async recreate(idOrName: string, signal?: AbortSignal): Promise<string> {
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(idOrName).inspect({ abortSignal: signal });
    } catch (error) {
      throw engineError(error, `inspect ${idOrName}`);
    }
    // The hostname defaults to the id: the new container gets its own.
    const { Hostname: _hostname, ...config } = info.Config;
    await this.remove(info.Id, signal);
    const created = await this.create(
      {
        ...config,
        name: info.Name.replace(/^\//, ''),
        HostConfig: info.HostConfig,
        NetworkingConfig: { EndpointsConfig: endpointsOf(info) },
      },
      signal,
    );
    if (created.outcome === 'exists') {
      throw new ConflictError(
        `container ${info.Name} was created again by someone else while being recreated`,
      );
    }
    return created.id;
  }

  async stop(
    idOrName: string,
    timeoutSeconds: number,
    signal?: AbortSignal,
  ): Promise<'stopped' | 'already_stopped' | 'not_found'> {
    try {
      await this.docker.getContainer(idOrName).stop({ t: timeoutSeconds, abortSignal: signal });
      return 'stopped';
    } catch (error) {
      if (statusOf(error) === 304) return 'already_stopped';
      if (statusOf(error) === 404) return 'not_found';
      throw engineError(error, `stop ${idOrName}`);
    }
  }

  async kill(idOrName: string, signalName = 'SIGKILL'): Promise<'killed' | 'not_running' | 'not_found'> {
    try {
      await this.docker.getContainer(idOrName).kill({ signal: signalName });
      return 'killed';
    } catch (error) {
      if (statusOf(error) === 404) return 'not_found';
      if (statusOf(error) === 409) return 'not_running';
      throw engineError(error, `kill ${idOrName}`);
    }
  }

  /** Force-removes the container and its anonymous volumes. */
  async remove(idOrName: string, signal?: AbortSignal): Promise<'removed' | 'not_found' | 'in_progress'> {
    try {
      await this.docker.getContainer(idOrName).remove({ force: true, v: true, abortSignal: signal });
      return 'removed';
    } catch (error) {
      if (statusOf(error) === 404) return 'not_found';
      // 409 "removal already in progress": someone else is on it; wait until it is gone,
      // so that a caller can reuse the name right after.
      if (statusOf(error) === 409) {
        await this.docker
          .getContainer(idOrName)
          .wait({ condition: 'removed', abortSignal: signal })
          .catch(() => undefined);
        return 'in_progress';
      }
      throw engineError(error, `remove ${idOrName}`);
    }
  }

  async inspect(idOrName: string, signal?: AbortSignal): Promise<ContainerDetails | undefined> {
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(idOrName).inspect({ abortSignal: signal });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw engineError(error, `inspect ${idOrName}`);
    }
    const ports: ContainerDetails['publishedPorts'] = {};
    for (const [port, bindings] of Object.entries(info.NetworkSettings?.Ports ?? {})) {
      ports[port] = (bindings ?? []).map((b) => ({ hostIp: b.HostIp, hostPort: Number(b.HostPort) }));
    }
    const state = info.State;
    const finishedAt = state.FinishedAt && !state.FinishedAt.startsWith('0001') ? state.FinishedAt : null;
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      image: info.Config?.Image ?? info.Image,
      labels: info.Config?.Labels ?? {},
      status: state.Status,
      running: state.Running,
      exitCode: state.Running || state.Status === 'created' ? null : state.ExitCode,
      oomKilled: state.OOMKilled,
      error: state.Error ? state.Error : null,
      startedAt: state.StartedAt && !state.StartedAt.startsWith('0001') ? state.StartedAt : null,
      finishedAt,
      publishedPorts: ports,
      networks: Object.keys(info.NetworkSettings?.Networks ?? {}),
      mounts: (info.Mounts ?? []).map((m) => ({
        type: m.Type,
        source: m.Source,
        destination: m.Destination,
        name: m.Name ?? null,
      })),
      ...secretOf(info.Config?.Env),
    };
  }

  /** Containers (running or not) carrying all the given `key=value` labels. */
  async list(labels: string[], signal?: AbortSignal): Promise<ContainerSummary[]> {
    try {
      const containers = await this.docker.listContainers({
        all: true,
        filters: { label: labels },
        abortSignal: signal,
      });
      return containers.map((c) => ({
        id: c.Id,
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        labels: c.Labels ?? {},
        state: c.State,
      }));
    } catch (error) {
      throw engineError(error, 'list containers');
    }
  }

  async logs(idOrName: string, tail: number, signal?: AbortSignal): Promise<string | undefined> {
    try {
      const buffer = (await this.docker.getContainer(idOrName).logs({
        stdout: true,
        stderr: true,
        tail,
        follow: false,
        abortSignal: signal,
      })) as unknown as Buffer;
      return demultiplex(buffer);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw engineError(error, `logs ${idOrName}`);
    }
  }

  /**
   * The container's output as one stream (stdout and stderr demultiplexed into it, in the
   * order the engine sends them); with `follow` it ends when the container stops.
   * Undefined when there is no such container.
   */
  async logStream(
    idOrName: string,
    options: { tail: number; follow: boolean; signal?: AbortSignal },
  ): Promise<Readable | undefined> {
    let source: NodeJS.ReadableStream;
    try {
      // The typings only know the follow:false overload's Buffer for a literal false.
      source = (await this.docker.getContainer(idOrName).logs({
        stdout: true,
        stderr: true,
        tail: options.tail,
        follow: true,
        abortSignal: options.signal,
      } as Dockerode.ContainerLogsOptions & { follow: true })) as NodeJS.ReadableStream;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw engineError(error, `logs ${idOrName}`);
    }
    if (!options.follow) {
      // Only the history was asked for: the engine's non-follow answer is one buffer.
      (source as Readable).destroy();
      const text = await this.logs(idOrName, options.tail, options.signal);
      if (text === undefined) return undefined;
      const once = new PassThrough();
      once.end(text);
      return once;
    }
    const output = new PassThrough();
    this.docker.modem.demuxStream(source, output, output);
    source.on('end', () => output.end());
    source.on('error', (error) => output.destroy(error));
    output.on('close', () => (source as Readable).destroy());
    return output;
  }

  /**
   * One sample of the container's resource use (the engine's one-shot stats: no second
   * sample, so no CPU percentage here; callers take it between two samples' counters).
   */
  async stats(
    idOrName: string,
    signal?: AbortSignal,
  ): Promise<{ cpuNanos: number; memoryBytes: number; memoryLimitBytes: number | null } | undefined> {
    let stats: Dockerode.ContainerStats;
    try {
      // The typings lack `one-shot` (a query parameter dockerode passes through as it is).
      const container = this.docker.getContainer(idOrName) as unknown as {
        stats(options: Record<string, unknown>): Promise<Dockerode.ContainerStats>;
      };
      stats = await container.stats({ stream: false, 'one-shot': true, abortSignal: signal });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw engineError(error, `stats ${idOrName}`);
    }
    const memory = stats.memory_stats ?? {};
    const usage = memory.usage;
    if (usage === undefined) return undefined; // not running: the engine sends empty stats
    // What `docker stats` shows: usage without the page cache the kernel can take back
    // (inactive_file on cgroup v2, total_inactive_file on v1).
    const cache = memory.stats?.inactive_file ?? memory.stats?.total_inactive_file ?? 0;
    const limit = memory.limit;
    return {
      cpuNanos: stats.cpu_stats?.cpu_usage?.total_usage ?? 0,
      memoryBytes: Math.max(0, usage - cache),
      // An unlimited container reports the host's memory as its limit.
      memoryLimitBytes: limit && limit < Number.MAX_SAFE_INTEGER ? limit : null,
    };
  }

  /**
   * Container events carrying the given labels, from `sinceNano` on, as a raw stream.
   * Parsing (NDJSON split across chunks) and reconnection live in docker-events.ts.
   */
  async eventStream(labels: string[], sinceNano: bigint | undefined, signal: AbortSignal) {
    try {
      // Rewind a little: the engine's nanosecond stamps lose precision through JSON numbers,
      // and the subscriber drops the replayed events it has already seen.
      const since = sinceNano === undefined ? undefined : formatSince(sinceNano - 1_000_000n);
      return await this.docker.getEvents({
        filters: { type: ['container'], label: labels },
        ...(since === undefined ? {} : { since }),
        abortSignal: signal,
      } as Dockerode.GetEventsOptions);
    } catch (error) {
      throw engineError(error, 'subscribe to events');
    }
  }

  async rename(idOrName: string, newName: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.docker.getContainer(idOrName).rename({ name: newName, abortSignal: signal });
    } catch (error) {
      throw engineError(error, `rename ${idOrName} to ${newName}`);
    }
  }

  /** Creates a named volume, or finds it: `created` tells which. */
  async ensureVolume(name: string, labels: Record<string, string>): Promise<{ created: boolean }> {
    try {
      await this.docker.getVolume(name).inspect();
      return { created: false };
    } catch (error) {
      if (statusOf(error) !== 404) throw engineError(error, `inspect volume ${name}`);
    }
    try {
      await this.docker.createVolume({ Name: name, Labels: labels });
      return { created: true };
    } catch (error) {
      throw engineError(error, `create volume ${name}`);
    }
  }

  /** Runs a short-lived container to completion and removes it; resolves with its exit code. */
  async runToCompletion(options: Dockerode.ContainerCreateOptions): Promise<number> {
    let container: Dockerode.Container | undefined;
    try {
      container = await this.docker.createContainer(options);
      await container.start();
      const result = (await container.wait()) as { StatusCode: number };
      return result.StatusCode;
    } catch (error) {
      throw engineError(error, `run ${options.Image}`);
    } finally {
      await container?.remove({ force: true }).catch(() => undefined);
    }
  }
}

/** Docker's `since` takes seconds with an optional fractional part. */
function formatSince(nano: bigint): string {
  const seconds = nano / 1_000_000_000n;
  const fraction = (nano % 1_000_000_000n).toString().padStart(9, '0');
  return `${seconds}.${fraction}`;
}

/** Non-TTY container logs are framed: 8-byte header (stream, 0,0,0, size BE32) + payload. */
export function demultiplex(buffer: Buffer): string {
  if (!Buffer.isBuffer(buffer)) return String(buffer);
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const streamType = buffer[offset];
    if (streamType !== 0 && streamType !== 1 && streamType !== 2) return buffer.toString('utf8');
    const size = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}

function secretOf(env: string[] | undefined): { workerSecret?: string } {
  const prefix = `${WORKER_SECRET_ENV}=`;
  const entry = env?.find((e) => e.startsWith(prefix));
  return entry ? { workerSecret: entry.slice(prefix.length) } : {};
}
