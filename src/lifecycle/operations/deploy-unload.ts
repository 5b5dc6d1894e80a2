/**
 * DEPLOY_UNLOAD: the job's model leaves the worker's memory; the worker keeps running so
 * the next load is fast. Requests under way finish first (the drain); requests that come
 * later load the model again on demand.
 */
import { ConflictError } from '../../errors.js';
import { requireLiveServer, resolveRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { ServerRecord } from '../../store/records.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';

export async function deployUnload(
  ctx: LifecycleContext,
  request: JobRequest | { jobId: string },
  reason: string,
): Promise<OperationOutcome> {
  const full = await resolveRequest(ctx.deps, request);
  return ctx.locks.run(full.jobId, async () => {
    const server = await requireLiveServer(ctx.deps, full.jobId);
    if (reason === 'restart') return restartUnloaded(ctx, full, server);
    if (server.state === 'failed') {
      throw new ConflictError(
        `server ${server.serverId} of job ${full.jobId} has failed (${server.reason ?? 'unknown reason'}); send DEPLOY_LOAD to recover it`,
      );
    }
    return runOperation(ctx, 'DEPLOY_UNLOAD', full, server, reason, async (rec) => {
      if (server.state === 'unloaded') {
        rec.warn(`server ${server.serverId} is already unloaded; nothing to do`);
        return { server };
      }
      return { server: await ctx.servers.unload(rec, server, reason) };
    });
  });
}

/**
 * The reconciler's restart of an unloaded job's dead worker (reason `restart`): the
 * worker is started (or recreated) and waited for, without the model, so the job is
 * `unloaded` again and the next inference loads it on demand. Only a server still
 * `failed` is restarted: an operator's DEPLOY_LOAD may have healed it meanwhile.
 */
function restartUnloaded(
  ctx: LifecycleContext,
  request: JobRequest,
  server: ServerRecord,
): Promise<OperationOutcome> {
  return runOperation(ctx, 'DEPLOY_UNLOAD', request, server, 'restart', async (rec) => {
    if (server.state !== 'failed') {
      rec.warn(`server ${server.serverId} is ${server.state}; nothing to restart`);
      return { server };
    }
    return { server: await ctx.servers.bringUp(rec, server, { load: false }) };
  });
}
