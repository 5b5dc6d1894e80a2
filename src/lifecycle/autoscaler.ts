/**
 * Autoscaling on concurrency: every `intervalMs` the autoscaler samples, per serving
 * job, the average number of requests in flight on its replicas since the last sample
 * (each route integrates its count over time, route-table.ts) plus the requests waiting
 * for a route, and turns it into the replicas the job wants:
 * ceil(concurrency / target), within the job's min..max.
 *
 * It never flaps: the job's desired count goes up only once every sample of the last
 * up delay wanted more (to the least of them), and down only once every sample of the
 * last down delay wanted fewer (to the most of them); after each change a whole new
 * delay must pass. Defaults react in about a second up and half a minute down.
 *
 * The desired count is stored on the job (so a restarted router keeps it); the job's
 * live servers are then converged to it one replica at a time: added ones come from the
 * warm pool when it has a worker, removed ones are drained first (operations/scale.ts).
 * A scale-up the quota (MODELDOCK_MAX_SERVERS) refuses is logged and counted; the
 * requests keep being served by the replicas there are. Scale from zero is not its
 * business: the first request of a job scaled to zero starts a replica itself
 * (job-routing.ts) and waits for it.
 */
import type { Logger } from 'pino';
import { QuotaExceededError, errorMessage } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { JobRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { EventBus } from './event-bus.js';
import { liveServers } from './job-requests.js';
import type { ScalingOptions } from './lifecycle-types.js';
import type { RouteTable } from './route-table.js';

export const DEFAULT_SCALE_INTERVAL_MS = 250;

interface Sample {
  at: number;
  wanted: number;
}

/** What the autoscaler drives; the lifecycle provides it. */
export interface ScaleActions {
  addReplica(jobId: string): Promise<unknown>;
  removeReplica(jobId: string): Promise<unknown>;
  /** Requests of the job waiting for a route now (they count as demand). */
  waiting(jobId: string): number;
}

/** The replicas a concurrency wants: ceil(concurrency / target) within min..max. */
export function wantedReplicas(
  concurrency: number,
  target: number,
  bounds: { min: number; max: number },
): number {
  const raw = Math.ceil(concurrency / target - 1e-9);
  return Math.min(bounds.max, Math.max(bounds.min, raw));
}

/**
 * The new desired count, or undefined to keep `current`: up when every sample of the
 * last `upDelayMs` wanted more, down when every sample of the last `downDelayMs` wanted
 * fewer. `samples` are oldest first; a window counts only once samples cover it.
 */
export function decideReplicas(
  samples: readonly Sample[],
  current: number,
  now: number,
  options: { upDelayMs: number; downDelayMs: number; intervalMs: number },
): number | undefined {
  const latest = samples[samples.length - 1];
  if (!latest) return undefined;
  const window = (delayMs: number) => {
    const from = now - delayMs;
    // Covered when the history reaches back to the window's start (within one interval).
    if (samples[0]!.at > from + options.intervalMs) return undefined;
    return samples.filter((sample) => sample.at >= from);
  };
  if (latest.wanted > current) {
    const recent = options.upDelayMs <= 0 ? [latest] : window(options.upDelayMs);
    if (recent && recent.every((sample) => sample.wanted > current)) {
      return Math.min(...recent.map((sample) => sample.wanted));
    }
  }
  if (latest.wanted < current) {
    const recent = options.downDelayMs <= 0 ? [latest] : window(options.downDelayMs);
    if (recent && recent.every((sample) => sample.wanted < current)) {
      return Math.max(...recent.map((sample) => sample.wanted));
    }
  }
  return undefined;
}

/** A job whose bounds leave nothing to scale (min = max) and that has its count. */
function isSettled(job: JobRecord, ready: number): boolean {
  const { min, max } = job.replicas;
  return min === max && job.desiredReplicas === min && ready === min;
}

export class Autoscaler {
  private timer: NodeJS.Timeout | undefined;
  private readonly samples = new Map<string, Sample[]>();
  /**
   * The job records the samples decide on, read once and kept until an operation of the
   * job ends (every write of a job record is an operation's; its end is an event): a
   * sample reads nothing from the store, whatever the number of serving jobs.
   */
  private readonly jobs = new Map<string, JobRecord>();
  private unsubscribe: (() => void) | undefined;
  /** Jobs whose replicas are being converged (one convergence per job at a time). */
  private readonly converging = new Set<string>();
  /** Per job, the replica counts last set as metrics. */
  private readonly reported = new Map<string, { desired: number; ready: number }>();
  private ticking = false;

  constructor(
    private readonly deps: {
      store: Store;
      /** Operations' ends: a job's record is read again after one. */
      events: EventBus;
      routes: RouteTable;
      actions: ScaleActions;
      metrics: Metrics;
      logger: Logger;
      options: ScalingOptions;
    },
  ) {}

  private get intervalMs(): number {
    return this.deps.options.intervalMs ?? DEFAULT_SCALE_INTERVAL_MS;
  }

  start(): void {
    if (this.timer) return;
    this.unsubscribe = this.deps.events.subscribe((event) => {
      if (event.type === 'operation' && event.operation.status !== 'running') {
        this.jobs.delete(event.operation.jobId);
      }
    });
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** A job's record changed (an operation set its bounds): read it again at the next sample. */
  forget(jobId: string): void {
    this.jobs.delete(jobId);
    this.samples.delete(jobId);
  }

  /** One sample of every serving job, and what follows from it. */
  async tick(now = Date.now()): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const { routes, actions } = this.deps;
      for (const jobId of [...routes.jobIds()]) {
        const entries = routes.list(jobId);
        const job = await this.job(jobId);
        if (!job) continue;
        this.report(jobId, job.desiredReplicas, entries.length);
        // A job of fixed bounds (the default, one replica) that wants and has them has
        // nothing to decide: it is not sampled. At 10,000 shared jobs about a thousand are
        // routed at once, and sampling each of them every tick was ~5 % of the router's CPU.
        if (isSettled(job, entries.length)) continue;
        let concurrency = actions.waiting(jobId);
        for (const entry of entries) concurrency += entry.sampleConcurrency(now);
        const target = job.scaleTarget ?? this.deps.options.target;
        const wanted = wantedReplicas(concurrency, target, job.replicas);
        const history = this.samples.get(jobId) ?? [];
        history.push({ at: now, wanted });
        const keepMs =
          Math.max(this.deps.options.upDelayMs, this.deps.options.downDelayMs) + 2 * this.intervalMs;
        while (history.length > 0 && history[0]!.at < now - keepMs) history.shift();
        this.samples.set(jobId, history);
        const desired = decideReplicas(history, job.desiredReplicas, now, {
          upDelayMs: this.deps.options.upDelayMs,
          downDelayMs: this.deps.options.downDelayMs,
          intervalMs: this.intervalMs,
        });
        if (desired !== undefined) await this.scaleTo(job, desired, concurrency);
        else if (job.desiredReplicas !== entries.length) void this.converge(jobId);
      }
      // Jobs that no longer have a route keep no history: a new one starts from scratch.
      for (const jobId of this.samples.keys()) if (routes.list(jobId).length === 0) this.forget(jobId);
      // Nor replica series: the gauge shows serving jobs, and a job unloaded, evicted or
      // terminated would keep claiming the replicas it last had (at 10,000 shared jobs, two
      // series for every job ever served).
      for (const jobId of this.reported.keys()) if (routes.list(jobId).length === 0) this.unreport(jobId);
    } catch (error) {
      this.deps.logger.warn({ err: errorMessage(error) }, 'autoscaler sample failed');
    } finally {
      this.ticking = false;
    }
  }

  private async scaleTo(job: JobRecord, desired: number, concurrency: number): Promise<void> {
    const updated = await this.deps.store.updateJob(job.jobId, { desiredReplicas: desired });
    this.jobs.set(job.jobId, updated);
    // A whole new delay must pass before the next change: no flapping.
    this.samples.delete(job.jobId);
    this.deps.logger.info(
      {
        jobId: job.jobId,
        from: job.desiredReplicas,
        to: desired,
        concurrency: Math.round(concurrency * 100) / 100,
      },
      `scaling job ${job.jobId} ${desired > job.desiredReplicas ? 'up' : 'down'} to ${desired} replica${desired === 1 ? '' : 's'}`,
    );
    void this.converge(job.jobId);
  }

  /** Add or remove replicas, one at a time, until the job's live servers match its desired count. */
  async converge(jobId: string): Promise<void> {
    if (this.converging.has(jobId)) return;
    this.converging.add(jobId);
    try {
      for (;;) {
        const job = await this.deps.store.getJob(jobId);
        if (!job) return;
        this.jobs.set(jobId, job);
        const live = await liveServers(this.deps, jobId);
        if (live.length === 0) return;
        const direction =
          live.length < job.desiredReplicas ? 'up' : live.length > job.desiredReplicas ? 'down' : undefined;
        if (!direction) return;
        try {
          const outcome =
            direction === 'up'
              ? await this.deps.actions.addReplica(jobId)
              : await this.deps.actions.removeReplica(jobId);
          if (outcome === undefined) return;
          this.deps.metrics.scaleEvents.inc({ direction, outcome: 'done' });
        } catch (error) {
          const refused = error instanceof QuotaExceededError;
          this.deps.metrics.scaleEvents.inc({ direction, outcome: refused ? 'refused' : 'failed' });
          this.deps.logger.warn(
            { jobId, direction, err: errorMessage(error) },
            refused
              ? `scale-up of job ${jobId} refused by the quota; its ${live.length} replicas keep serving`
              : `scaling job ${jobId} ${direction} failed`,
          );
          if (refused) {
            // Keep the count that exists: asking again every sample would only repeat the refusal.
            this.jobs.set(jobId, await this.deps.store.updateJob(jobId, { desiredReplicas: live.length }));
            this.samples.delete(jobId);
          }
          return;
        }
      }
    } catch (error) {
      this.deps.logger.warn({ jobId, err: errorMessage(error) }, 'autoscaler could not converge a job');
    } finally {
      this.converging.delete(jobId);
    }
  }

  /** The job's replica counts as metrics, set only when they changed (a label set costs a hash per set). */
  private report(jobId: string, desired: number, ready: number): void {
    const last = this.reported.get(jobId);
    if (last?.desired === desired && last.ready === ready) return;
    this.reported.set(jobId, { desired, ready });
    this.deps.metrics.replicas.set({ job: jobId, kind: 'desired' }, desired);
    this.deps.metrics.replicas.set({ job: jobId, kind: 'ready' }, ready);
  }

  private unreport(jobId: string): void {
    this.reported.delete(jobId);
    this.deps.metrics.replicas.remove({ job: jobId, kind: 'desired' });
    this.deps.metrics.replicas.remove({ job: jobId, kind: 'ready' });
  }

  private async job(jobId: string): Promise<JobRecord | undefined> {
    const cached = this.jobs.get(jobId);
    if (cached) return cached;
    const job = await this.deps.store.getJob(jobId);
    if (job) this.jobs.set(jobId, job);
    return job;
  }
}
