/**
 * DEPLOY_CREATE: the job gets its servers (replicas, 1 by default) with its model
 * loaded. Idempotent: a job whose servers are ready and serving is left alone (with a
 * warning); servers that exist in another state are converged to ready; missing ones
 * are created, and count against the creation limits (all of them are checked against
 * MODELDOCK_MAX_SERVERS before anything is recorded).
 */
import { initialReplicas } from '../../store/records.js';
import { assertSameJob, liveServers, placementFor, validateRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';
import { assertRoomFor, bringUpReplicas, servingReplicas } from '../replicas.js';

export async function deployCreate(
  ctx: LifecycleContext,
  request: JobRequest,
  reason: string,
): Promise<OperationOutcome> {
  await validateRequest(ctx.deps, request);
  return ctx.creations.admit(() =>
    ctx.locks.run(request.jobId, () => deployCreateLocked(ctx, request, reason)),
  );
}

async function deployCreateLocked(
  ctx: LifecycleContext,
  request: JobRequest,
  reason: string,
): Promise<OperationOutcome> {
  const { deps, servers } = ctx;
  const job = await deps.store.getJob(request.jobId);
  let live = await liveServers(deps, request.jobId);
  if (job && live.length > 0) assertSameJob(job, request);
  // The request's bounds, else the job's own, else one server (the original behaviour).
  const replicas = request.replicas ?? job?.replicas ?? { min: 1, max: 1 };
  const start = initialReplicas(replicas);
  // A job already serving keeps the count the autoscaler gave it, within the new bounds.
  const desired =
    live.length > 0 && job && job.desiredReplicas > 0
      ? Math.min(replicas.max, Math.max(start, job.desiredReplicas))
      : start;
  const missing = Math.max(0, desired - live.length);
  const placement = await placementFor(deps, request, job, live);
  if (missing > 0) await assertRoomFor(ctx, placement, missing);
  return runOperation(ctx, 'DEPLOY_CREATE', request, live[0], reason, async (rec) => {
    const scaleTarget = request.scaleTarget === undefined ? {} : { scaleTarget: request.scaleTarget };
    if (!job) {
      await deps.store.ensureJob({
        ...request,
        replicas,
        desiredReplicas: desired,
        ...scaleTarget,
        placement,
      });
    } else {
      // The job's old servers are gone: a new create may serve another model.
      const model = live.length === 0 ? { model: request.model, dataset: request.dataset } : {};
      await deps.store.updateJob(request.jobId, {
        ...model,
        replicas,
        desiredReplicas: desired,
        ...scaleTarget,
        placement,
      });
    }
    // An operator's request is a fresh start for existing servers' restart budgets.
    if (reason === 'request') {
      live = await Promise.all(live.map((server) => servers.renewRestartBudget(server)));
    }
    const serving = await servingReplicas(ctx, live);
    if (missing === 0 && serving.size === live.length) {
      const ids = live.map((server) => server.serverId).join(', ');
      rec.warn(
        `job ${request.jobId} already has ${live.length === 1 ? 'a ready server' : `${live.length} ready servers`} (${ids}); nothing to do`,
      );
      return { server: live[0]!, servers: live };
    }
    const created = [];
    for (let i = 0; i < missing; i++) created.push(await servers.newServer(rec, request, 'job', placement));
    const all = [...live, ...created];
    const up = await bringUpReplicas(ctx, rec, all, serving);
    return { server: up[0]!, servers: up };
  });
}
