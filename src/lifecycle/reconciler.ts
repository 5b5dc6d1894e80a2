/**
 * Keeps the store (what should exist) and the runtime (what does) in agreement.
 *
 * Level-triggered, as Kubernetes controllers are: a runtime event or a timer only says
 * "look at server X" (or "look at everything"); the reconcile reads the current state
 * from both sides and acts on that. Work is deduplicated per server and runs under the
 * job's lock, so it never interleaves with an operation on the same job.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { LABELS, type Runtime, type WorkerInfo } from '../runtime/runtime.js';
import type { WorkerClient } from '../runtime/worker-client.js';
import type { ServerRecord, ServerState } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { Lifecycle } from './lifecycle.js';
import { orphanJobId } from './operations/adopt.js';
import { servedName } from './shared-fleet.js';
import { LIVE_STATES, TRANSIENT_STATES } from './state-machine.js';

export interface ReconcilerOptions {
  /** This router's instance name: worker names start with it. */
  instance: string;
  intervalMs: number;
  restartLimit: number;
  restartBackoffMs: number;
  /** A worker that ran this long before it died was healthy: its server's restart count starts over. */
  restartResetMs: number;
}

/** What a restart brings a server back to: the state it had when its worker died. */
type RestartTarget = 'ready' | 'unloaded';

export interface ReconcileReport {
  servers: number;
  workers: number;
  /** Workers running without a record, taken back (operations/adopt.ts). */
  adopted: number;
  /** Records corrected to what their worker has loaded (start-up only). */
  realigned: number;
  orphansRemoved: number;
  markedFailed: number;
  finished: number;
  interruptedOperations: number;
  durationMs: number;
}

export class Reconciler {
  private readonly abort = new AbortController();
  private readonly pending = new Set<string>();
  /** Shared workers whose numbers this router reserved in the store already. */
  private readonly reservedWorkers = new Set<string>();
  /** Per server whose worker died: the state its restart brings it back to. */
  private readonly restartTargets = new Map<string, RestartTarget>();
  /** Restarts that could not run because the engine or the store was away: retried each pass. */
  private readonly pendingRestarts = new Set<string>();
  /** Servers whose restart is decided or running here (postponed ones included). */
  private readonly restarting = new Set<string>();
  /** Per server being restarted: tells the lifecycle the restart is over (its requests wait for it). */
  private readonly restartsUnderWay = new Map<string, () => void>();
  private timer: NodeJS.Timeout | undefined;
  private eventsLoop: Promise<void> | undefined;
  private fullPass: Promise<ReconcileReport> | undefined;

  constructor(
    private readonly deps: {
      store: Store;
      runtime: Runtime;
      workers: WorkerClient;
      lifecycle: Lifecycle;
      metrics: Metrics;
      logger: Logger;
      options: ReconcilerOptions;
    },
  ) {}

  /** Start watching: one full pass now, then engine events and a periodic safety net. */
  async start(): Promise<void> {
    this.eventsLoop = this.watchEvents();
    await this.reconcileAll('startup').catch((error) =>
      this.deps.logger.warn({ err: errorMessage(error) }, 'start-up reconcile failed; will retry'),
    );
    this.timer = setInterval(() => {
      void this.reconcileAll('periodic').catch((error) =>
        this.deps.logger.warn({ err: errorMessage(error) }, 'periodic reconcile failed'),
      );
    }, this.deps.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.timer) clearInterval(this.timer);
    await this.eventsLoop?.catch(() => undefined);
    await this.fullPass?.catch(() => undefined);
  }

  /** Compare every live record with every owned worker and converge. Concurrent calls share one pass. */
  reconcileAll(trigger: string): Promise<ReconcileReport> {
    if (!this.fullPass) {
      this.fullPass = this.runFullPass(trigger).finally(() => (this.fullPass = undefined));
    }
    return this.fullPass;
  }

  private async runFullPass(trigger: string): Promise<ReconcileReport> {
    const started = performance.now();
    const report: ReconcileReport = {
      servers: 0,
      workers: 0,
      adopted: 0,
      realigned: 0,
      orphansRemoved: 0,
      markedFailed: 0,
      finished: 0,
      interruptedOperations: 0,
      durationMs: 0,
    };
    try {
      report.interruptedOperations = await this.closeInterruptedOperations();
      const mark = this.deps.lifecycle.live.mark();
      const [servers, workers] = await Promise.all([
        this.deps.store.listServers({ states: LIVE_STATES }),
        this.deps.runtime.list(),
      ]);
      // The store is the truth: the lifecycle's view of the live records becomes what it holds.
      this.deps.lifecycle.live.refresh(servers, mark);
      report.servers = servers.length;
      report.workers = workers.length;
      const liveNames = new Set(servers.map((s) => s.workerName));
      const byName = new Map(workers.map((w) => [w.name, w]));

      // In number order, so that adoption reserves the numbers as they were handed out.
      for (const worker of [...workers].sort((a, b) => a.name.localeCompare(b.name))) {
        // Matched by name: a worker handed over by the warm pool keeps the pool's labels.
        // Shared workers are the fleet's (it closes those that host nothing).
        if (liveNames.has(worker.name) || this.deps.lifecycle.fleet.owns(worker)) continue;
        if (this.deps.lifecycle.pool.owns(worker)) {
          // One no longer running (its death unseen, say an event lost) is replaced by its pool.
          if (!worker.running) this.deps.lifecycle.pool.lost(worker);
          continue;
        }
        const outcome = await this.handleOrphan(worker);
        if (outcome === 'adopted') report.adopted++;
        if (outcome === 'removed') report.orphansRemoved++;
      }
      report.adopted += await this.adoptSharedModels(workers, servers);
      if (trigger === 'startup') report.realigned = await this.realignAll(servers, byName);
      for (const server of servers) {
        const worker = byName.get(server.workerName);
        // Most servers need nothing (ready or unloaded, their worker running): decided on
        // what this pass read, with no lock and no read of their own. Whatever changes them
        // after that read is an operation's, which converges them itself.
        if (settled(server, worker)) continue;
        const outcome = await this.reconcileServer(server.serverId, worker, server);
        if (outcome === 'failed') report.markedFailed++;
        if (outcome === 'finished') report.finished++;
      }
      for (const serverId of [...this.pendingRestarts]) {
        this.pendingRestarts.delete(serverId);
        await this.restart(serverId);
      }
      await this.refreshGauges(trigger, servers);
      this.deps.metrics.reconcilePasses.inc({ trigger, outcome: 'ok' });
    } catch (error) {
      this.deps.metrics.reconcilePasses.inc({ trigger, outcome: 'error' });
      throw error;
    } finally {
      report.durationMs = Math.round(performance.now() - started);
    }
    return report;
  }

  /**
   * A worker of ours that no live record names. Its record terminated: nothing should run
   * it, so it goes. No record at all (lost, or the database was restored from an older
   * backup): adopted, or removed with a record saying why (operations/adopt.ts).
   */
  private async handleOrphan(worker: WorkerInfo): Promise<'adopted' | 'removed' | 'kept'> {
    const serverId = this.serverIdOf(worker.name, worker.labels);
    const record = serverId ? await this.deps.store.getServer(serverId) : undefined;
    const jobId = record?.jobId ?? orphanJobId(worker);
    return this.deps.lifecycle.withJobLock(jobId, async () => {
      const again = serverId ? await this.deps.store.getServer(serverId) : undefined;
      if (again && again.state !== 'terminated') return 'kept';
      const number = serverId ? Number(/^inf-(\d+)$/.exec(serverId)?.[1]) : NaN;
      if (again || !Number.isSafeInteger(number)) {
        this.deps.logger.info({ worker: worker.name, serverId }, 'removing orphan worker');
        await this.deps.runtime.remove(worker.name);
        return 'removed';
      }
      const outcome = await this.deps.lifecycle.adoptOrRemove(worker, serverId!, number);
      return 'adopted' in outcome ? 'adopted' : 'removed';
    });
  }

  /**
   * At start-up the records may be older than the workers (a restored backup): a `ready`
   * or `unloaded` record is checked against what its running worker has loaded.
   */
  private async realignAll(servers: ServerRecord[], byName: Map<string, WorkerInfo>): Promise<number> {
    let realigned = 0;
    for (const server of servers) {
      const worker = byName.get(server.workerName);
      if (!worker?.running) continue;
      await this.deps.lifecycle.withJobLock(server.jobId, async () => {
        const current = await this.deps.store.getServer(server.serverId);
        if (current?.version !== server.version) return;
        if ((await this.deps.lifecycle.realign(current, worker)) !== current) realigned++;
      });
    }
    return realigned;
  }

  /** The server a worker belongs to: its label, or its deterministic name `<instance>-inf-NNNN`. */
  private serverIdOf(name: string, labels: Record<string, string>): string | undefined {
    const labelled = labels[LABELS.server];
    if (labelled) return labelled;
    const prefix = `${this.deps.options.instance}-`;
    const rest = name.startsWith(prefix) ? name.slice(prefix.length) : '';
    return /^inf-\d{4,}$/.test(rest) ? rest : undefined;
  }

  /** Ask for one server to be looked at soon; repeated asks before it runs collapse into one. */
  enqueue(serverId: string): void {
    if (this.pending.has(serverId) || this.abort.signal.aborted) return;
    this.pending.add(serverId);
    setImmediate(() => {
      this.pending.delete(serverId);
      if (this.abort.signal.aborted) return;
      this.reconcileServer(serverId).catch((error) =>
        this.deps.logger.warn({ serverId, err: errorMessage(error) }, 'reconcile of server failed'),
      );
    });
  }

  /**
   * The models loaded on running shared workers that no live record names there (the
   * records were lost): each adopted, or unloaded saying why (operations/adopt.ts). The
   * workers' numbers are reserved, so a new shared worker never takes an existing name.
   */
  private async adoptSharedModels(workers: WorkerInfo[], servers: ServerRecord[]): Promise<number> {
    const { lifecycle, store } = this.deps;
    let adopted = 0;
    const servedOn = new Map<string, Set<string>>();
    for (const s of servers) {
      const set = servedOn.get(s.workerName) ?? new Set<string>();
      set.add(servedName(s));
      servedOn.set(s.workerName, set);
    }
    for (const worker of workers) {
      if (!lifecycle.fleet.owns(worker)) continue;
      const number = Number(/-(\d+)$/.exec(worker.name)?.[1]);
      // Once per worker and router: a write per shared worker on every pass would be wasted.
      if (Number.isSafeInteger(number) && !this.reservedWorkers.has(worker.name)) {
        await store.reserveServerNumber(number);
        this.reservedWorkers.add(worker.name);
      }
      if (!worker.running || !worker.endpoint) continue;
      let entries;
      try {
        entries = (await this.deps.workers.index(worker.endpoint)).filter((e) => e.state === 'READY');
      } catch {
        continue; // Not answering: the next pass looks again.
      }
      const recorded = servedOn.get(worker.name) ?? new Set<string>();
      for (const entry of entries) {
        if (recorded.has(entry.name)) continue;
        const outcome = await lifecycle.withJobLock(entry.name, async () => {
          // Looked at again under the lock: an operation may have placed it meanwhile. Only
          // the records that can be served under this name are read — the job's (a job's
          // model is served under its id) and a TEMP server's of that id — not every live
          // record: under churn each model loaded since this pass's read is such an entry,
          // and reading 10,000 records for each held the router for seconds (density bench).
          const [ofJob, temp] = await Promise.all([
            store.listServers({ jobId: entry.name, states: LIVE_STATES }),
            store.getServer(entry.name),
          ]);
          const named = [...ofJob, ...(temp && LIVE_STATES.includes(temp.state) ? [temp] : [])];
          if (named.some((s) => s.workerName === worker.name && servedName(s) === entry.name)) return 'ok';
          return lifecycle.adoptSharedModel(worker, entry);
        });
        if (outcome === 'adopted') adopted++;
      }
    }
    return adopted;
  }

  /** Every live server whose record names the (shared) worker. */
  private async enqueueHostedBy(workerName: string): Promise<void> {
    try {
      const live = await this.deps.store.listServers({ states: LIVE_STATES });
      for (const server of live) if (server.workerName === workerName) this.enqueue(server.serverId);
    } catch (error) {
      // The periodic pass finds them.
      this.deps.logger.warn(
        { worker: workerName, err: errorMessage(error) },
        'could not list the servers a shared worker hosted',
      );
    }
  }

  private async watchEvents(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        for await (const event of this.deps.runtime.events(signal)) {
          const ended =
            event.type === 'die' || event.type === 'oom' || event.type === 'destroy' || event.type === 'stop';
          if (!ended) continue;
          // An idle pool worker that died is replaced by its pool.
          if (this.deps.lifecycle.pool.owns(event)) {
            this.deps.lifecycle.pool.lost(event);
            continue;
          }
          // A shared worker takes every server it hosts with it: each is looked at (and placed again).
          if (this.deps.lifecycle.fleet.owns(event)) {
            this.deps.lifecycle.fleet.workerEnded(event.name);
            await this.enqueueHostedBy(event.name);
            continue;
          }
          const serverId = this.serverIdOf(event.name, event.labels);
          if (serverId) this.enqueue(serverId);
        }
      } catch (error) {
        if (signal.aborted) return;
        this.deps.logger.warn({ err: errorMessage(error) }, 'runtime events failed; resubscribing');
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  /**
   * Converge one server. Returns what it did: 'ok' (nothing to do), 'failed' (marked
   * failed), 'finished' (a crashed operation finished or rolled back), 'restarted'.
   */
  async reconcileServer(serverId: string, knownWorker?: WorkerInfo, listed?: ServerRecord): Promise<string> {
    const first = listed ?? (await this.deps.store.getServer(serverId));
    if (!first) return 'ok';
    const decision = await this.deps.lifecycle.withJobLock(first.jobId, async () => {
      // What the pass listed is stale once an operation changed the record meanwhile (a
      // restart waited on by this lock replaced the worker): look again then. Every write
      // of this router passes through the live view, so a listed record the view still
      // holds at the same version is current (no second read per server and pass).
      const server =
        listed && this.deps.lifecycle.live.holds(listed) ? listed : await this.deps.store.getServer(serverId);
      if (!server) return 'ok';
      // A shared server not placed yet names no worker.
      const worker =
        knownWorker?.name === server.workerName && server === listed
          ? knownWorker
          : server.workerName
            ? await this.deps.runtime.inspect(server.workerName)
            : undefined;
      return this.converge(server, worker);
    });
    if (decision !== 'restart') return decision;
    try {
      return await this.restart(first.serverId);
    } finally {
      this.restartsUnderWay.get(first.serverId)?.();
      this.restartsUnderWay.delete(first.serverId);
    }
  }

  private async converge(server: ServerRecord, worker: WorkerInfo | undefined): Promise<string> {
    const lifecycle = this.deps.lifecycle;
    const shared = server.placement === 'shared';
    if (server.state === 'terminated') {
      // A shared worker is not the server's: it goes when it hosts nothing (shared-fleet.ts).
      if (worker && !shared) await this.deps.runtime.remove(server.workerName);
      return worker && !shared ? 'finished' : 'ok';
    }
    if (server.kind === 'temp' || server.state === 'terminating') {
      // A TEMP server outside its operation, or a termination cut short: finish it. On a
      // shared worker that means its model leaves the worker; the worker stays.
      if (!shared) await this.deps.runtime.remove(server.workerName);
      else if (worker?.running && worker.endpoint) {
        await this.deps.workers.unload(worker.endpoint, servedName(server)).catch(() => undefined);
      }
      await lifecycle.transition(
        server.state === 'terminating' ? server : await this.toTerminating(server),
        'terminated',
        {
          endpoint: null,
          loadedAt: null,
          terminatedAt: new Date().toISOString(),
          reason: server.kind === 'temp' ? 'interrupted: the TEMP operation did not finish' : server.reason,
        },
      );
      if (!shared) await this.deps.workers.forget(server.endpoint);
      return 'finished';
    }
    if ((TRANSIENT_STATES as readonly ServerState[]).includes(server.state)) {
      return this.settleInterrupted(server, worker);
    }
    if (server.state === 'failed') {
      // The record says the worker is dead (the reconciler marked it so: no endpoint), yet
      // the engine runs it: a start whose router was killed before it recorded it, or a
      // `docker start` by hand. Believe the engine once the worker answers.
      if (server.endpoint === null && worker?.running && worker.endpoint) {
        if (await this.adoptRunningWorker(server, worker)) return 'finished';
      }
      // A restart this server's record announces, that no one runs: the router that
      // decided it died before it ran (or the engine was away). Run it now.
      if (RESTART_DECIDED.test(server.reason ?? '') && !this.restarting.has(server.serverId)) {
        if (!worker?.running) return this.decideRestart(server, server.loadedAt ? 'ready' : 'unloaded');
      }
      // An operation saw the worker vanish mid-request; the engine knows why. Say so.
      if (worker && !worker.running && worker.oomKilled && !/OOM/.test(server.reason ?? '')) {
        await lifecycle.transition(server, 'failed', {
          reason:
            `worker was killed for running out of memory (OOM, limit reached); ${server.reason ?? ''}`.trim(),
        });
      }
      return 'ok';
    }
    // An unloaded shared server holds nothing on any worker: the worker it last lived on
    // may close or die without it (it is placed again when it is next loaded).
    if (shared && server.state === 'unloaded') return 'ok';
    // ready or unloaded. A container being removed (`docker rm -f`) is as good as gone.
    const vanished = !worker || worker.status === 'removing' || worker.status === 'dead';
    if (!vanished && worker.running) return 'ok';
    lifecycle.invalidateRoute(server);
    const why = vanished
      ? 'container vanished (removed outside modeldock)'
      : worker.oomKilled
        ? 'worker was killed for running out of memory (OOM)'
        : `worker exited with code ${worker.exitCode ?? 'unknown'}${worker.error ? `: ${worker.error}` : ''}`;
    const limit = this.deps.options.restartLimit;
    // A crash-loop detector, as Kubernetes' back-off is: deaths count only while they
    // come in a row; a worker that ran healthily for the reset period starts over.
    const ranMs = vanished ? sinceLoaded(server) : ranFor(worker);
    const healthy = ranMs !== undefined && ranMs >= this.deps.options.restartResetMs;
    const restartsSoFar = healthy ? 0 : server.restarts;
    const log = { jobId: server.jobId, serverId: server.serverId, state: server.state, reason: why };
    if (restartsSoFar < limit) {
      const attempt = restartsSoFar + 1;
      const target: RestartTarget = server.state === 'ready' ? 'ready' : 'unloaded';
      this.deps.logger.warn(
        { ...log, attempt, limit, ...(healthy && server.restarts > 0 ? { ranMs, budgetRenewed: true } : {}) },
        `worker died; restarting it (attempt ${attempt} of ${limit})`,
      );
      await lifecycle.transition(server, 'failed', {
        reason: `${why}; restarting (attempt ${attempt} of ${limit})`,
        restarts: attempt,
        endpoint: null,
        ...(target === 'unloaded' ? { loadedAt: null } : {}),
      });
      return this.decideRestart(server, target);
    }
    this.deps.logger.error(
      { ...log, restarts: server.restarts, limit },
      `worker died and its restart limit (${limit}) is reached; the server stays failed until DEPLOY_LOAD`,
    );
    await lifecycle.transition(server, 'failed', {
      reason: `${why}; restart limit (${limit}) reached; DEPLOY_LOAD recovers it`,
      endpoint: null,
      loadedAt: null,
    });
    return 'failed';
  }

  /**
   * Under the job's lock: the server will be restarted (to `target`) once the lock is
   * released. Decided under the lock, so no request looks the job up in between and
   * answers "failed": requests wait for the new worker instead.
   */
  private decideRestart(server: ServerRecord, target: RestartTarget): 'restart' {
    this.restartTargets.set(server.serverId, target);
    this.restarting.add(server.serverId);
    this.restartsUnderWay.get(server.serverId)?.();
    this.restartsUnderWay.set(server.serverId, this.deps.lifecycle.restartPending(server.jobId));
    return 'restart';
  }

  /**
   * A `failed` server whose worker runs: ready if the worker serves the job's model,
   * else unloaded (the next inference loads it on demand). False if it does not answer.
   */
  private async adoptRunningWorker(server: ServerRecord, worker: WorkerInfo): Promise<boolean> {
    const endpoint = worker.endpoint!;
    let loaded: boolean;
    try {
      loaded = await this.deps.workers.isLoaded(endpoint, servedName(server));
    } catch {
      return false;
    }
    const lifecycle = this.deps.lifecycle;
    const to = loaded ? 'ready' : 'unloaded';
    const reason = `recovered: the worker runs and answers (was failed: ${server.reason ?? 'unknown reason'})`;
    const loading = await lifecycle.transition(server, 'loading', { endpoint, workerId: worker.id });
    await lifecycle.transition(loading, to, {
      reason: reason.slice(0, 2000),
      ...(loaded ? { loadedAt: new Date().toISOString() } : { loadedAt: null }),
    });
    this.deps.logger.warn(
      { jobId: server.jobId, serverId: server.serverId, state: to },
      "a failed server's worker runs and answers: the record follows the engine",
    );
    return true;
  }

  private async toTerminating(server: ServerRecord): Promise<ServerRecord> {
    return this.deps.lifecycle.transition(server, 'terminating');
  }

  /** A server found mid-operation (the router died): keep what really happened, mark the rest. */
  private async settleInterrupted(server: ServerRecord, worker: WorkerInfo | undefined): Promise<string> {
    const lifecycle = this.deps.lifecycle;
    if (worker?.running && worker.endpoint) {
      try {
        const loaded = await this.deps.workers.isLoaded(worker.endpoint, servedName(server));
        const to = loaded
          ? 'ready'
          : server.state === 'unloading' || server.state === 'loading'
            ? 'unloaded'
            : undefined;
        if (to) {
          await lifecycle.transition(server, to, {
            endpoint: worker.endpoint,
            workerId: worker.id,
            reason: `recovered after an interrupted operation (was ${server.state})`,
            ...(to === 'ready' ? { loadedAt: new Date().toISOString() } : { loadedAt: null }),
          });
          return 'finished';
        }
      } catch {
        // The worker does not answer: fall through to failed.
      }
    }
    await lifecycle.transition(server, 'failed', {
      reason: `interrupted while ${server.state}; DEPLOY_LOAD resumes it`,
      endpoint: worker?.endpoint ?? null,
    });
    return 'finished';
  }

  private async restart(serverId: string): Promise<string> {
    this.restarting.add(serverId);
    try {
      return await this.attemptRestart(serverId);
    } finally {
      // A postponed restart is still this router's to run (on the next pass).
      if (!this.pendingRestarts.has(serverId)) this.restarting.delete(serverId);
    }
  }

  private async attemptRestart(serverId: string): Promise<string> {
    const server = await this.deps.store.getServer(serverId);
    if (!server) return 'ok';
    // The first restart in a row is at once; each further one waits twice as long.
    const wait = server.restarts > 1 ? this.deps.options.restartBackoffMs * 2 ** (server.restarts - 2) : 0;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const target = this.restartTargets.get(serverId) ?? 'ready';
    try {
      // That replica only (the job's other replicas keep serving meanwhile); an unloaded
      // one's worker comes back without its model: the next inference loads it.
      const outcome = await this.deps.lifecycle.restartServer(serverId, target);
      this.restartTargets.delete(serverId);
      this.deps.logger.warn(
        { jobId: server.jobId, serverId, state: outcome?.server?.state, restarts: server.restarts },
        'worker restarted',
      );
      return 'restarted';
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'runtime_unavailable' || code === 'store_unavailable') {
        // Not the worker's fault: try again on the next pass, once the engine answers.
        this.pendingRestarts.add(serverId);
        this.deps.logger.warn(
          { jobId: server.jobId, serverId, err: errorMessage(error) },
          'restart postponed until the engine is back',
        );
        return 'postponed';
      }
      if (await this.countFailedRestart(serverId, error)) return this.attemptRestart(serverId);
      this.restartTargets.delete(serverId);
      return 'failed';
    }
  }

  /**
   * The restart itself failed (its new worker died while it booted, or did not come up):
   * one more failure in a row. Within the budget it is tried again, with the back-off
   * (true); past it the server stays failed with the reason. Under the job's lock, and
   * only while the server is still failed: an operator may have acted meanwhile.
   */
  private async countFailedRestart(serverId: string, error: unknown): Promise<boolean> {
    const { store, lifecycle, logger, options } = this.deps;
    const first = await store.getServer(serverId);
    if (!first) return false;
    const limit = options.restartLimit;
    const why = `restart failed: ${errorMessage(error)}`.slice(0, 1500);
    return lifecycle.withJobLock(first.jobId, async () => {
      const server = await store.getServer(serverId);
      if (server?.state !== 'failed') return false;
      const log = { jobId: server.jobId, serverId, reason: why };
      if (server.restarts < limit) {
        const attempt = server.restarts + 1;
        logger.warn(
          { ...log, attempt, limit },
          `restart failed; restarting it again (attempt ${attempt} of ${limit})`,
        );
        await lifecycle.transition(server, 'failed', {
          reason: `${why}; restarting (attempt ${attempt} of ${limit})`,
          restarts: attempt,
        });
        return true;
      }
      logger.error(
        { ...log, restarts: server.restarts, limit },
        `restart failed and the restart limit (${limit}) is reached; the server stays failed until DEPLOY_LOAD`,
      );
      await lifecycle.transition(server, 'failed', {
        reason: `${why}; restart limit (${limit}) reached; DEPLOY_LOAD recovers it`,
      });
      return false;
    });
  }

  /** `running` operation records that no live operation of this router owns were cut short. */
  private async closeInterruptedOperations(): Promise<number> {
    const running = await this.deps.store.listOperations({ status: 'running', limit: 1000 });
    let closed = 0;
    for (const op of running) {
      if (this.deps.lifecycle.activeOperations.has(op.operationId)) continue;
      await this.deps.store.updateOperation(op.operationId, {
        status: 'failed',
        error: { code: 'interrupted', message: 'the router stopped before the operation finished' },
        finishedAt: new Date().toISOString(),
      });
      closed++;
    }
    return closed;
  }

  /**
   * `modeldock_servers{state}` from the store: every record at start-up, then the live
   * ones this pass read (the terminated stay counted as the router tracked them).
   */
  private async refreshGauges(trigger: string, live: readonly ServerRecord[]): Promise<void> {
    if (trigger === 'startup') this.deps.metrics.resetServers(await this.deps.store.listServers());
    else this.deps.metrics.resetLiveServers(live);
  }
}

/**
 * Whether a listed server needs nothing from the reconciler: the cases `converge` answers
 * 'ok' for without acting (ready or unloaded, its worker running; a shared one unloaded).
 */
function settled(server: ServerRecord, worker: WorkerInfo | undefined): boolean {
  if (server.kind !== 'job' || (server.state !== 'ready' && server.state !== 'unloaded')) return false;
  if (server.placement === 'shared' && server.state === 'unloaded') return true;
  return worker !== undefined && worker.status !== 'removing' && worker.status !== 'dead' && worker.running;
}

/** How long a dead worker ran before it died, by the runtime's own clock; undefined if unknown. */
function ranFor(worker: WorkerInfo): number | undefined {
  const started = worker.startedAt ? Date.parse(worker.startedAt) : NaN;
  const finished = worker.finishedAt ? Date.parse(worker.finishedAt) : NaN;
  return finished > started ? finished - started : undefined;
}

/** How long a server has been loaded (its worker's engine record is gone); undefined if not loaded. */
function sinceLoaded(server: ServerRecord): number | undefined {
  return server.loadedAt ? Date.now() - Date.parse(server.loadedAt) : undefined;
}

/** A failed server's reason when the reconciler decided to restart it ("…; restarting (attempt 1 of 3)"). */
const RESTART_DECIDED = /; restarting \(attempt \d+ of \d+\)$/;
