/**
 * DEPLOY_UNLOAD: the job's model leaves its workers' memory (every replica); the workers
 * keep running so the next load is fast. Requests under way finish first (the drain);
 * requests that come later load the model again on demand. A job scaled to zero has
 * nothing loaded: nothing to do.
 */
import { ConflictError } from '../../errors.js';
import type { ServerRecord } from '../../store/records.js';
import { isScaledToZero, liveServers, requireJob, resolveRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';
import { onEveryReplica } from '../replicas.js';

export async function deployUnload(
  ctx: LifecycleContext,
  request: JobRequest | { jobId: string },
  reason: string,
): Promise<OperationOutcome> {
  const full = await resolveRequest(ctx.deps, request);
  return ctx.locks.run(full.jobId, async () => {
    const job = await requireJob(ctx.deps, full.jobId);
    const live = await liveServers(ctx.deps, full.jobId);
    if (isScaledToZero(job, live)) {
      return runOperation(ctx, 'DEPLOY_UNLOAD', full, undefined, reason, async (rec) => {
        rec.warn(`job ${full.jobId} is scaled to zero: no model is loaded; nothing to do`);
        return { server: (await ctx.deps.store.currentServer(full.jobId)) ?? null, servers: [] };
      });
    }
    if (live.length === 0) {
      throw new ConflictError(
        `job ${full.jobId} has no live server (terminated or never created); send DEPLOY_CREATE`,
      );
    }
    const failed = live.filter((server) => server.state === 'failed');
    if (failed.length === live.length) {
      const server = failed[0]!;
      throw new ConflictError(
        `server ${server.serverId} of job ${full.jobId} has failed (${server.reason ?? 'unknown reason'}); send DEPLOY_LOAD to recover it`,
      );
    }
    return runOperation(ctx, 'DEPLOY_UNLOAD', full, live[0], reason, async (rec) => {
      for (const server of failed) {
        rec.warn(`server ${server.serverId} has failed and holds no model; left as it is`);
      }
      const targets = live.filter((server) => server.state !== 'failed');
      if (targets.every((server) => server.state === 'unloaded')) {
        rec.warn(
          targets.length === 1
            ? `server ${targets[0]!.serverId} is already unloaded; nothing to do`
            : `servers ${targets.map((server) => server.serverId).join(', ')} are already unloaded; nothing to do`,
        );
        return { server: targets[0]!, servers: live };
      }
      const after = await onEveryReplica(targets, (server) =>
        server.state === 'unloaded' ? Promise.resolve(server) : ctx.servers.unload(rec, server, reason),
      );
      return { server: after[0]!, servers: [...after, ...failed] };
    });
  });
}

/**
 * The reconciler's restart of an unloaded replica's dead worker (reason `restart`), for
 * a caller holding the job's lock: the worker is started (or recreated) and waited for,
 * without the model, so the server is `unloaded` again and the next inference loads it
 * on demand. Only a server still `failed` is restarted: an operator's DEPLOY_LOAD may
 * have healed it meanwhile.
 */
export function restartUnloadedLocked(
  ctx: LifecycleContext,
  request: JobRequest,
  server: ServerRecord,
): Promise<OperationOutcome> {
  return runOperation(ctx, 'DEPLOY_UNLOAD', request, server, 'restart', async (rec) => {
    if (server.state !== 'failed') {
      rec.warn(`server ${server.serverId} is ${server.state}; nothing to restart`);
      return { server, servers: [server] };
    }
    const up = await ctx.servers.bringUp(rec, server, { load: false });
    return { server: up, servers: [up] };
  });
}
