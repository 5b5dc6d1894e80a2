/**
 * TERMINATE: the job's server is drained, stopped and removed; the job record stays, so
 * a later DEPLOY_CREATE may serve it again. A job without a live server is a no-op with
 * a warning.
 */
import { liveServer, resolveRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';

export async function terminate(
  ctx: LifecycleContext,
  request: JobRequest | { jobId: string },
  reason: string,
): Promise<OperationOutcome> {
  const { deps } = ctx;
  const full = await resolveRequest(deps, request);
  return ctx.locks.run(full.jobId, async () => {
    const server = await liveServer(deps, full.jobId);
    return runOperation(ctx, 'TERMINATE', full, server, reason, async (rec) => {
      if (!server) {
        const last = await deps.store.currentServer(full.jobId);
        rec.warn(`job ${full.jobId} has no live server; nothing to terminate`);
        return { server: last ?? null };
      }
      return { server: await ctx.servers.terminate(rec, server, reason) };
    });
  });
}
