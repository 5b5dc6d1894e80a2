/**
 * DEPLOY_UNLOAD: the job's model leaves the worker's memory; the worker keeps running so
 * the next load is fast. Requests under way finish first (the drain); requests that come
 * later load the model again on demand.
 */
import { ConflictError } from '../../errors.js';
import { requireLiveServer, resolveRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
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
