/**
 * The steps that move one server through its states, shared by the five operations and
 * by on-demand loads: record a new server, bring it up (container, worker ready, model
 * loaded), unload it, terminate it, and mark it failed. Each state change is a
 * conditional write of the server record, published to subscribers; each step that
 * touches a worker is recorded on the operation that runs it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  ConflictError,
  RuntimeUnavailableError,
  StoreUnavailableError,
  WorkerError,
  errorMessage,
  type ModeldockError,
} from '../errors.js';
import { LABELS, type WorkerInfo } from '../runtime/runtime.js';
import type { Placement, ServerKind, ServerRecord, ServerState } from '../store/records.js';
import { formatServerId } from '../store/server-id.js';
import type { ServerPatch } from '../store/store.js';
import type { CreationGate } from './creation-gate.js';
import type { JobRequest, LifecycleDeps } from './lifecycle-types.js';
import type { MemoryPolicy } from './memory-policy.js';
import type { OperationRecorder } from './operation-recorder.js';
import { RouteEntry, type RouteTable } from './route-table.js';
import type { ServingRuntime } from './serving-runtimes.js';
import type { LiveServers } from './live-servers.js';
import { servedName, type SharedFleet } from './shared-fleet.js';
import { canTransition } from './state-machine.js';
import { POOL_KIND } from './warm-pool.js';
import type { WarmPools } from './warm-pools.js';
import { workerSpec } from './worker-spec.js';

export class ServerSteps {
  /** Foreign servers' memory when ready without a model, by server id (this router's measurements). */
  private readonly idleMemory = new Map<string, number>();

  constructor(
    private readonly deps: LifecycleDeps,
    private readonly routes: RouteTable,
    private readonly creations: CreationGate,
    private readonly pool: WarmPools,
    private readonly memoryPolicy: () => MemoryPolicy,
    private readonly fleet: SharedFleet,
    /** The live records in memory: told of every record written here, as it is written. */
    private readonly live: LiveServers,
  ) {}

  /**
   * A new server record (`creating`) for the request, counted against MODELDOCK_MAX_SERVERS
   * (a shared one against MODELDOCK_MAX_SHARED_JOBS). A shared server names no worker
   * until it is placed (bringUp).
   */
  async newServer(
    rec: OperationRecorder,
    request: JobRequest,
    kind: ServerKind,
    placement: Placement = 'dedicated',
  ): Promise<ServerRecord> {
    const { store, runtime, options } = this.deps;
    return rec.step('record', async () => {
      // Counted and recorded one at a time, so concurrent creations never overshoot MODELDOCK_MAX_SERVERS.
      const shared = placement === 'shared';
      const server = await this.creations.record(
        // One commit: the number, the record and the operation naming it (and the
        // operation's intent, when this is its first write).
        () =>
          store.transaction(async () => {
            const number = await store.allocateServerNumber();
            const serverId = formatServerId(number);
            const inserted = await store.insertServer({
              serverId,
              number,
              jobId: request.jobId,
              model: request.model,
              dataset: request.dataset,
              kind,
              placement,
              state: 'creating',
              reason: null,
              runtime: runtime.kind,
              workerName: shared ? '' : `${options.instance}-${serverId}`,
              workerId: null,
              endpoint: null,
              restarts: 0,
              loadedAt: null,
              lastUsedAt: null,
              terminatedAt: null,
            });
            // Counted before the next creation is: the bounds count the view.
            this.live.track(inserted);
            await rec.attachServer(inserted.serverId);
            return inserted;
          }),
        shared ? () => this.fleet.assertRoom() : undefined,
      );
      this.publish(server);
      return server;
    });
  }

  /**
   * Converge a server to `ready`: container present and running, worker ready, model
   * loaded. With `load: false` (an unloaded job's dead worker restarted) it stops short
   * of the model and ends `unloaded`.
   */
  async bringUp(
    rec: OperationRecorder,
    start: ServerRecord,
    { load = true }: { load?: boolean } = {},
  ): Promise<ServerRecord> {
    if (start.placement === 'shared') return this.bringUpShared(rec, start, load);
    const { runtime, workers, options } = this.deps;
    let server = start;
    try {
      const serving = await this.deps.catalog.servingRuntime(server.model);
      let info = await runtime.inspect(server.workerName);
      if (info && (info.status === 'removing' || info.status === 'dead')) {
        // A container on its way out cannot be started again: finish removing it, recreate.
        await runtime.remove(server.workerName);
        info = undefined;
      }
      if (!info) {
        server = await this.transition(server, 'creating', { endpoint: null, workerId: null });
        const name = server.workerName;
        const labels: Record<string, string> = {
          [LABELS.server]: server.serverId,
          [LABELS.job]: server.jobId,
          [LABELS.model]: server.model,
          [LABELS.dataset]: server.dataset,
          [LABELS.kind]: server.kind,
        };
        if (serving) labels[LABELS.servingRuntime] = serving.name;
        const spec = workerSpec(name, labels, options.workerLimits, serving);
        // A started worker from the entry's warm pool (when it has one) skips the start entirely.
        info = await rec.step(
          'create',
          async () => (await this.pool.take(name, serving)) || runtime.create(spec),
        );
      }
      if (!info.running) {
        const name = server.workerName;
        info = await rec.step('start', () => runtime.start(name));
      }
      const endpoint = requireEndpoint(info);
      if (server.endpoint && server.endpoint !== endpoint) await workers.forget(server.endpoint);
      server = await this.transition(server, 'loading', { workerId: info.id, endpoint, reason: null });
      await rec.step('wait_ready', () =>
        workers.waitUntilReady(endpoint, {
          timeoutMs: options.readyTimeoutMs,
          isAlive: async () => (await runtime.inspect(server.workerName))?.running === true,
        }),
      );
      // A foreign server's idle memory, which an unload is checked against (checkMemoryBack).
      if (serving && !serving.modeldockWorker && serving.unloadMemory === 'frees') {
        await this.measureIdle(server);
      }
      if (!load) return await this.transition(server, 'unloaded', { loadedAt: null });
      const modelName = server.jobId;
      // A foreign server finds the model in its own repository, under the job's name; one
      // from the warm pool started with an empty repository, which its guard links the model
      // into (again after every restart: the repository starts empty each time).
      const model = serving?.modeldockWorker === false ? undefined : server.model;
      if (serving?.modeldockWorker === false && info.labels[LABELS.kind] === POOL_KIND) {
        await rec.step('link', () => workers.linkModel(endpoint, modelName, server.model));
      }
      if (server.kind === 'job') {
        const room = await this.memoryPolicy().makeRoomFor(server.jobId, server.model);
        if (room.overLimit) rec.warn(room.overLimit);
      }
      await rec.step('load', () => workers.load(endpoint, modelName, model));
      const now = new Date().toISOString();
      server = await this.transition(server, 'ready', { loadedAt: now, lastUsedAt: now });
      if (server.kind === 'job') await this.openRoute(server, serving);
      return server;
    } catch (error) {
      await this.markFailed(server, error);
      throw error;
    }
  }

  /**
   * Shared placement's way up: the model is loaded, under its served name, on the shared
   * worker the fleet picks (possibly another one than last time, possibly a new one).
   * With `load: false` (an unloaded server whose worker died) nothing is placed: it stays
   * unloaded and is placed again when it is next loaded.
   */
  private async bringUpShared(
    rec: OperationRecorder,
    start: ServerRecord,
    load: boolean,
  ): Promise<ServerRecord> {
    let server = start;
    try {
      if (!load) {
        if (server.state !== 'loading') server = await this.transition(server, 'loading', { endpoint: null });
        return await this.transition(server, 'unloaded', { endpoint: null, loadedAt: null });
      }
      // Both state changes are held by the operation (transition): `loading` is written
      // just before the load step, `ready` with the operation's finish.
      server = await rec.step('place', () =>
        this.fleet.place(rec, server, (worker) =>
          this.transition(
            server,
            'loading',
            { workerName: worker.name, workerId: worker.id, endpoint: worker.endpoint, reason: null },
            rec,
          ),
        ),
      );
      const endpoint = server.endpoint!;
      // Room was made by the placement, on measured memory (shared-memory.ts, eviction.ts).
      const loaded = await rec.step('load', () =>
        this.deps.workers.load(endpoint, servedName(server), server.model, undefined, server.dataset),
      );
      this.fleet.memory.observeLoad(server.workerName, servedName(server), server.model, loaded);
      // The fleet may have passed its high watermark: room for the next loads is made now, beside.
      this.fleet.keepHeadroom();
      const now = new Date().toISOString();
      server = await this.transition(server, 'ready', { loadedAt: now, lastUsedAt: now }, rec);
      if (server.kind === 'job') await this.openRoute(server);
      return server;
    } catch (error) {
      await this.markFailed(server, error);
      throw error;
    }
  }

  async unload(rec: OperationRecorder, start: ServerRecord, reason: string): Promise<ServerRecord> {
    let server = start;
    // Withdrawn first: requests from now on go to the job's other replicas, or wait for
    // the job's next state (and load it again on demand) instead of reaching a worker
    // that is about to refuse them.
    const route = this.routes.withdrawServer(server.jobId, server.serverId);
    try {
      // A shared server's changes are held by the operation (transition): `unloading` is
      // written just before the unload step, `unloaded` with the operation's finish.
      const heldBy = server.placement === 'shared' ? rec : undefined;
      server = await this.transition(server, 'unloading', {}, heldBy);
      await this.drainWithdrawn(rec, route);
      const endpoint = server.endpoint;
      if (endpoint) {
        const serving = await this.deps.catalog.servingRuntime(server.model).catch(() => undefined);
        if (serving?.unloadMemory === 'keeps') {
          // Known to keep an unloaded model's memory: a restart without the model is the
          // unload that gives it back (the model leaves with the process).
          server = await this.restartWithoutModel(rec, server);
        } else {
          const foreign = serving !== undefined && !serving.modeldockWorker;
          const { workerMemoryBytes } = await rec.step('unload', async () => {
            const unloaded = await this.deps.workers.unload(endpoint, servedName(server));
            if (foreign) await this.unloadSettled(endpoint, servedName(server));
            return unloaded;
          });
          if (server.placement === 'shared') {
            this.fleet.memory.observeUnload(server.workerName, servedName(server), workerMemoryBytes);
          }
          if (foreign) server = await this.checkMemoryBack(rec, server);
        }
      }
      return await this.transition(
        server,
        'unloaded',
        {
          loadedAt: null,
          reason: reason === 'request' ? null : reason,
        },
        heldBy,
      );
    } catch (error) {
      await this.markFailed(server, error);
      throw error;
    }
  }

  /**
   * A foreign server whose entry says it frees memory on unload is measured after the
   * unload against its idle memory (measured when it became ready): one that kept the
   * model's memory anyway is restarted without the model, and the operation says so.
   * Without an idle measurement (the server came up under an earlier router), or without
   * a measurement now, nothing is decided.
   */
  private async checkMemoryBack(rec: OperationRecorder, server: ServerRecord): Promise<ServerRecord> {
    const idle = this.idleMemory.get(server.serverId);
    if (idle === undefined) return server;
    const now = await rec.step('measure_memory', () =>
      this.deps.runtime.stats(server.workerName).catch(() => undefined),
    );
    if (!now || now.memoryBytes <= idle + memorySlack(idle)) return server;
    rec.warn(
      `the server kept ${mib(now.memoryBytes)} MiB after the unload (${mib(idle)} MiB when idle): restarted without the model`,
    );
    return this.restartWithoutModel(rec, server);
  }

  /**
   * Until a foreign server's repository index no longer shows the model READY or
   * UNLOADING (at most UNLOAD_SETTLE_MS): a server may unload in the background — Triton
   * answers the unload at once, its stub process exiting after — and an unload is done
   * when the server says so, not before (memory measured earlier would count the model
   * as kept; a DEPLOY_UNLOAD answered earlier would leave it READY a moment longer).
   */
  private async unloadSettled(endpoint: string, name: string): Promise<void> {
    const deadline = Date.now() + UNLOAD_SETTLE_MS;
    while (Date.now() < deadline) {
      const entries = await this.deps.workers.index(endpoint).catch(() => undefined);
      const state = entries?.find((entry) => entry.name === name)?.state;
      if (state !== 'READY' && state !== 'UNLOADING') return;
      await delay(UNLOAD_POLL_MS);
    }
  }

  /**
   * Stop the server and start it again without loading the model (unloading → unloaded
   * follows): every byte the model held goes with the old process. Recorded as the
   * operation's `stop`, `start` and `wait_ready` steps.
   */
  private async restartWithoutModel(rec: OperationRecorder, start: ServerRecord): Promise<ServerRecord> {
    const { runtime, workers, options } = this.deps;
    let server = start;
    const name = server.workerName;
    await rec.step('stop', () => runtime.stop(name, { timeoutSeconds: options.stopTimeoutSeconds ?? 5 }));
    const info = await rec.step('start', () => runtime.start(name));
    const endpoint = requireEndpoint(info);
    if (server.endpoint && server.endpoint !== endpoint) await workers.forget(server.endpoint);
    server = await this.transition(server, 'unloading', { workerId: info.id, endpoint });
    await rec.step('wait_ready', () =>
      workers.waitUntilReady(endpoint, {
        timeoutMs: options.readyTimeoutMs,
        isAlive: async () => (await runtime.inspect(name))?.running === true,
      }),
    );
    await this.measureIdle(server);
    return server;
  }

  /** A foreign server's memory while it holds no model, for checkMemoryBack. */
  private async measureIdle(server: ServerRecord): Promise<void> {
    const stats = await this.deps.runtime.stats(server.workerName).catch(() => undefined);
    if (stats) this.idleMemory.set(server.serverId, stats.memoryBytes);
    else this.idleMemory.delete(server.serverId);
  }

  async terminate(rec: OperationRecorder, start: ServerRecord, reason: string): Promise<ServerRecord> {
    const { runtime, workers, options } = this.deps;
    let server = start;
    if (server.state === 'terminated') return server;
    // Withdrawn before the state changes, so no new request is routed to a stopping worker.
    const route =
      server.kind === 'job' ? this.routes.withdrawServer(server.jobId, server.serverId) : undefined;
    server = await this.transition(server, 'terminating');
    if (server.kind === 'job') await this.drainWithdrawn(rec, route);
    if (server.placement === 'shared') return this.terminateShared(rec, server, reason);
    const name = server.workerName;
    // A job's worker gets a graceful stop; a TEMP worker has nothing left to finish, so it
    // is removed at once (remove kills it), which saves the stop's round of signals.
    if (server.kind === 'job') {
      await rec.step('stop', () => runtime.stop(name, { timeoutSeconds: options.stopTimeoutSeconds ?? 5 }));
    }
    await rec.step('remove', () => runtime.remove(name));
    await workers.forget(server.endpoint);
    this.idleMemory.delete(server.serverId);
    return this.transition(server, 'terminated', {
      endpoint: null,
      loadedAt: null,
      terminatedAt: new Date().toISOString(),
      reason: reason === 'request' ? null : reason,
    });
  }

  /**
   * A shared server's end: its model leaves the shared worker, which keeps serving the
   * other jobs (the fleet closes it once it hosts nothing for a while). A worker that is
   * gone has nothing to unload.
   */
  private async terminateShared(
    rec: OperationRecorder,
    start: ServerRecord,
    reason: string,
  ): Promise<ServerRecord> {
    let server = start;
    const endpoint = server.endpoint;
    if (endpoint && server.workerName) {
      const worker = await this.deps.runtime.inspect(server.workerName);
      if (worker?.running && worker.endpoint === endpoint) {
        const { workerMemoryBytes } = await rec.step('unload', () =>
          this.deps.workers.unload(endpoint, servedName(server)),
        );
        this.fleet.memory.observeUnload(server.workerName, servedName(server), workerMemoryBytes);
      }
    }
    server = await this.transition(server, 'terminated', {
      endpoint: null,
      loadedAt: null,
      terminatedAt: new Date().toISOString(),
      reason: reason === 'request' ? null : reason,
    });
    return server;
  }

  /** Record a failure on the server, unless the failure says nothing about the server. */
  async markFailed(server: ServerRecord, error: unknown): Promise<void> {
    if (error instanceof StoreUnavailableError) return;
    if (error instanceof RuntimeUnavailableError) return;
    if (server.kind === 'job') this.routes.withdrawServer(server.jobId, server.serverId);
    try {
      const latest = (await this.deps.store.getServer(server.serverId)) ?? server;
      if (latest.state === 'failed' || latest.state === 'terminated') return;
      let reason = errorMessage(error);
      if (
        latest.workerName &&
        (error instanceof WorkerError || (error as ModeldockError).code === 'timeout')
      ) {
        const logs = await this.deps.runtime.logs(latest.workerName, { tail: 5 }).catch(() => '');
        if (logs.trim()) reason += ` | worker log: ${logs.trim().split('\n').slice(-5).join(' / ')}`;
      }
      await this.transition(latest, 'failed', { reason: reason.slice(0, 2000) });
    } catch (markError) {
      this.deps.logger.warn(
        { err: errorMessage(markError), serverId: server.serverId },
        'could not mark failed',
      );
    }
  }

  /** The record of a worker found running without one (operations/adopt.ts), announced like a new server. */
  async adopt(
    rec: OperationRecorder,
    server: Omit<ServerRecord, 'version' | 'createdAt' | 'updatedAt'>,
  ): Promise<ServerRecord> {
    const adopted = await rec.step('record', () => this.deps.store.insertServer(server));
    this.live.track(adopted);
    await rec.attachServer(adopted.serverId);
    this.publish(adopted);
    return adopted;
  }

  /**
   * An operator's explicit DEPLOY_LOAD (or DEPLOY_CREATE) renews the server's restart
   * budget: the reconciler counts worker deaths in a row from here.
   */
  async renewRestartBudget(server: ServerRecord): Promise<ServerRecord> {
    if (server.restarts === 0) return server;
    return this.transition(server, server.state, { restarts: 0 });
  }

  /**
   * Conditional state change; every write names the version it read. With `heldBy`, the
   * write is held by that operation until its next store call, worker step or finish
   * (operation-intents.ts) and the record it will write is returned at once: the job's
   * lock, held through the operation, keeps every other writer of the record away.
   */
  async transition(
    server: ServerRecord,
    to: ServerState,
    patch: ServerPatch = {},
    heldBy?: OperationRecorder,
  ): Promise<ServerRecord> {
    if (server.state !== to && !canTransition(server.state, to)) {
      throw new ConflictError(`server ${server.serverId} cannot go from ${server.state} to ${to}`);
    }
    const change = { ...patch, state: to };
    let updated: ServerRecord;
    if (heldBy) {
      const given = Object.fromEntries(Object.entries(change).filter(([, value]) => value !== undefined));
      updated = { ...server, ...given, version: server.version + 1, updatedAt: new Date().toISOString() };
      heldBy.intent.hold(() => this.deps.store.updateServer(server.serverId, server.version, change));
    } else {
      updated = await this.deps.store.updateServer(server.serverId, server.version, change);
    }
    this.live.track(updated);
    if (to === 'failed' && server.state !== 'failed') {
      this.deps.logger.warn(
        { jobId: updated.jobId, serverId: updated.serverId, was: server.state, reason: updated.reason },
        'server marked failed',
      );
    }
    this.publish(updated);
    return updated;
  }

  /** Whether a `ready` server really serves: container running and model loaded. */
  async isServing(server: ServerRecord): Promise<boolean> {
    if (!server.endpoint) return false;
    const info = await this.deps.runtime.inspect(server.workerName);
    if (!info?.running || info.endpoint !== server.endpoint) return false;
    try {
      return await this.deps.workers.isLoaded(server.endpoint, servedName(server));
    } catch {
      return false;
    }
  }

  /**
   * The route of a ready job server (one replica); a new route counts as used now, as its
   * loadedAt does. It says whether the server takes binary tensors (its serving runtime's
   * entry, looked up when not given).
   */
  async openRoute(server: ServerRecord, serving?: ServingRuntime): Promise<RouteEntry> {
    // Only modeldock's worker hosts shared servers, and it takes binary tensors: no need to
    // read the model's manifest, which on a busy router took longer than the rest of a
    // load on demand (several file-system round trips; the density bench's churn). A model
    // the catalog no longer places (its server's command gone meanwhile) still has a
    // running server: routed as modeldock's worker is.
    const entry =
      serving ??
      (server.placement === 'shared'
        ? undefined
        : await this.deps.catalog.servingRuntime(server.model).catch(() => undefined));
    const route = new RouteEntry(
      server.jobId,
      server.serverId,
      server.endpoint!,
      server.jobId,
      entry?.binaryTensors ?? true,
    );
    return this.routes.set(route);
  }

  private publish(server: ServerRecord): void {
    this.deps.metrics.trackServer(server.serverId, server.state);
    this.deps.events.publish({ type: 'server', server });
    // What the memory budget and MODELDOCK_MAX_SERVERS leave for the warm pools may have
    // changed (memory released by an unload, a termination or a failure, or taken; a job or
    // TEMP server gone): the pools look again. Not on `creating`: that server is about to
    // take a pool worker, and dropping one first would waste a started worker; nor on
    // `loading`: a pooled foreign server is replaced once the one taken has its model
    // (warm-pool.ts), and making room for the load gives pool workers up itself.
    if (server.state !== 'creating' && server.state !== 'loading') this.pool.refill();
  }

  /**
   * Let the requests under way on a withdrawn route finish (bounded by the drain
   * timeout), recorded as the operation's `drain` step.
   */
  private async drainWithdrawn(rec: OperationRecorder, entry: RouteEntry | undefined): Promise<void> {
    const timeoutMs = this.deps.options.drainTimeoutMs ?? 30_000;
    await rec.step('drain', async () => {
      const left = (await entry?.drain(timeoutMs)) ?? 0;
      if (left > 0) {
        rec.warn(
          `${left} inference request${left === 1 ? ' was' : 's were'} still in flight after the ${timeoutMs} ms drain timeout`,
        );
      }
    });
  }
}

/** How long an unload may go on in the background before the memory is measured anyway. */
const UNLOAD_SETTLE_MS = 10_000;
/** The server's index is asked this often meanwhile: no server announces the end of an unload. */
const UNLOAD_POLL_MS = 50;

/**
 * How much more than its idle memory a server may hold after an unload and still count as
 * having given the model back: allocators and caches keep some (64 MiB, or a quarter of
 * the idle figure when that is more).
 */
function memorySlack(idleBytes: number): number {
  return Math.max(64 * 1024 * 1024, idleBytes / 4);
}

function mib(bytes: number): number {
  return Math.round(bytes / (1024 * 1024));
}

function requireEndpoint(info: WorkerInfo): string {
  if (!info.endpoint) throw new WorkerError(`worker ${info.name} is running but has no reachable endpoint`);
  return info.endpoint;
}
