/**
 * DEPLOY_LOAD: the job's existing servers (all its replicas) are brought to ready
 * (started if stopped, model loaded if unloaded, recreated if their container vanished).
 * A job scaled to zero gets its first replica back (a cold start). The locked form is
 * also how a request loads a cold job on demand and how the reconciler restarts a
 * replica whose worker died.
 */
import { ConflictError } from '../../errors.js';
import type { ServerRecord } from '../../store/records.js';
import { isScaledToZero, liveServers, requireJob, resolveRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';
import { bringUpReplicas, servingReplicas } from '../replicas.js';
import { scaleFromZeroLocked } from './scale.js';

export async function deployLoad(
  ctx: LifecycleContext,
  request: JobRequest | { jobId: string },
  reason: string,
): Promise<OperationOutcome> {
  const full = await resolveRequest(ctx.deps, request);
  return ctx.locks.run(full.jobId, () => deployLoadLocked(ctx, full, reason));
}

/** DEPLOY_LOAD for a caller that already holds the job's lock. */
export async function deployLoadLocked(
  ctx: LifecycleContext,
  request: JobRequest,
  reason: string,
): Promise<OperationOutcome> {
  const { servers } = ctx;
  const job = await requireJob(ctx.deps, request.jobId);
  let live = await liveServers(ctx.deps, request.jobId);
  if (isScaledToZero(job, live)) return scaleFromZeroLocked(ctx, job, request, reason);
  if (live.length === 0) {
    throw new ConflictError(
      `job ${request.jobId} has no live server (terminated or never created); send DEPLOY_CREATE`,
    );
  }
  return runOperation(ctx, 'DEPLOY_LOAD', request, live[0], reason, async (rec) => {
    // An operator's load is a fresh start: worker deaths are counted in a row from here.
    if (reason === 'request') {
      live = await Promise.all(live.map((server) => servers.renewRestartBudget(server)));
    }
    const serving = await servingReplicas(ctx, live);
    if (serving.size === live.length) {
      rec.warn(
        live.length === 1
          ? `server ${live[0]!.serverId} is already loaded; nothing to do`
          : `servers ${live.map((server) => server.serverId).join(', ')} are already loaded; nothing to do`,
      );
      return { server: live[0]!, servers: live };
    }
    const up = await bringUpReplicas(ctx, rec, live, serving);
    return { server: up[0]!, servers: up };
  });
}

/**
 * DEPLOY_LOAD of one replica (the reconciler's restart of a dead worker, the heal of a
 * worker that lost its model), for a caller that holds the job's lock: the job's other
 * replicas keep serving meanwhile.
 */
export async function loadReplicaLocked(
  ctx: LifecycleContext,
  request: JobRequest,
  server: ServerRecord,
  reason: string,
): Promise<OperationOutcome> {
  return runOperation(ctx, 'DEPLOY_LOAD', request, server, reason, async (rec) => {
    if (server.state === 'ready' && (await ctx.servers.isServing(server))) {
      rec.warn(`server ${server.serverId} is already loaded; nothing to do`);
      return { server, servers: [server] };
    }
    const up = await ctx.servers.bringUp(rec, server);
    return { server: up, servers: [up] };
  });
}
