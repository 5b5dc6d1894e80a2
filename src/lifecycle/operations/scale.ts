/**
 * The autoscaler's operations on one job: add a replica (a new server, from the warm
 * pool when it has a worker), remove one (drained first: the requests under way on it
 * finish, new ones go to the other replicas), and start a job scaled to zero again (the
 * cold start, which its first request waits for). Each is recorded like any operation:
 * DEPLOY_CREATE with reason `scale_up`, TERMINATE with `scale_down` or `scale_to_zero`,
 * DEPLOY_LOAD with `scale_from_zero` (its duration is the cold start's).
 */
import { initialReplicas, type JobRecord } from '../../store/records.js';
import { liveServers, requireJob } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';
import { assertRoomFor, onEveryReplica } from '../replicas.js';

/**
 * A job scaled to zero gets its first replicas back, for a caller holding the job's
 * lock (an inference request's look-up, a DEPLOY_LOAD). Checked against
 * MODELDOCK_MAX_SERVERS first (429 then, nothing recorded).
 */
export async function scaleFromZeroLocked(
  ctx: LifecycleContext,
  job: JobRecord,
  request: JobRequest,
  reason: string,
): Promise<OperationOutcome> {
  const { deps, servers } = ctx;
  const count = initialReplicas(job.replicas);
  await assertRoomFor(ctx, job.placement, count);
  const started = performance.now();
  const outcome = await runOperation(
    ctx,
    'DEPLOY_LOAD',
    request,
    undefined,
    'scale_from_zero',
    async (rec) => {
      if (reason !== 'scale_from_zero')
        rec.warn(`job ${job.jobId} was scaled to zero; started again (${reason})`);
      await deps.store.updateJob(job.jobId, { desiredReplicas: count });
      const created = [];
      for (let i = 0; i < count; i++)
        created.push(await servers.newServer(rec, request, 'job', job.placement));
      const up = await onEveryReplica(
        created,
        (server) => servers.bringUp(rec, server),
        ctx.creations.limits.concurrency,
      );
      return { server: up[0]!, servers: up };
    },
  );
  deps.metrics.coldStartDuration.observe({ job: job.jobId }, (performance.now() - started) / 1000);
  return outcome;
}

/**
 * One more replica for the job, if it still has fewer live servers than it should
 * (looked at again under the job's lock). Undefined when there was nothing to do.
 * QuotaExceededError when MODELDOCK_MAX_SERVERS leaves no room (nothing recorded).
 */
export async function addReplica(
  ctx: LifecycleContext,
  jobId: string,
): Promise<OperationOutcome | undefined> {
  return ctx.creations.admit(() =>
    ctx.locks.run(jobId, async () => {
      const job = await requireJob(ctx.deps, jobId);
      const live = await liveServers(ctx.deps, jobId);
      // Only a serving job scales: an unloaded, terminated or failed one waits for an operation.
      if (live.length === 0 || live.length >= job.desiredReplicas) return undefined;
      if (!live.some((server) => server.state === 'ready')) return undefined;
      await assertRoomFor(ctx, job.placement);
      const request = { jobId, model: job.model, dataset: job.dataset };
      return runOperation(ctx, 'DEPLOY_CREATE', request, undefined, 'scale_up', async (rec) => {
        const server = await ctx.servers.newServer(rec, request, 'job', job.placement);
        const up = await ctx.servers.bringUp(rec, server);
        return { server: up, servers: [up] };
      });
    }),
  );
}

/**
 * One replica fewer, if the job has more live servers than it should: the newest one
 * (the oldest keeps serving, and keeps the name the original answers gave), withdrawn
 * from routing, drained, stopped and removed. Undefined when there was nothing to do.
 */
export async function removeReplica(
  ctx: LifecycleContext,
  jobId: string,
): Promise<OperationOutcome | undefined> {
  return ctx.locks.run(jobId, async () => {
    const job = await requireJob(ctx.deps, jobId);
    const live = await liveServers(ctx.deps, jobId);
    if (live.length === 0 || live.length <= job.desiredReplicas) return undefined;
    // A replica that does not serve goes first; else the newest.
    const victim = live.find((server) => server.state !== 'ready') ?? live[live.length - 1]!;
    const reason = job.desiredReplicas === 0 && live.length === 1 ? 'scale_to_zero' : 'scale_down';
    const request = { jobId, model: job.model, dataset: job.dataset };
    return runOperation(ctx, 'TERMINATE', request, victim, reason, async (rec) => {
      const after = await ctx.servers.terminate(rec, victim, reason);
      return { server: after, servers: [after] };
    });
  });
}
