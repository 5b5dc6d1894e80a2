/**
 * TERMINATE: the job's servers (all replicas) are drained, stopped and removed; the job
 * record stays, so a later DEPLOY_CREATE may serve it again. A job scaled to zero stops
 * starting on demand. A job without a live server is a no-op with a warning.
 */
import { initialReplicas } from '../../store/records.js';
import { isScaledToZero, liveServers, requireJob, resolveRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';
import { onEveryReplica } from '../replicas.js';

export async function terminate(
  ctx: LifecycleContext,
  request: JobRequest | { jobId: string },
  reason: string,
): Promise<OperationOutcome> {
  const { deps } = ctx;
  const full = await resolveRequest(deps, request);
  return ctx.locks.run(full.jobId, async () => {
    const job = await requireJob(deps, full.jobId);
    const live = await liveServers(deps, full.jobId);
    return runOperation(ctx, 'TERMINATE', full, live[0], reason, async (rec) => {
      // A terminated job is not "scaled to zero": nothing starts it until a DEPLOY_CREATE.
      if (job.desiredReplicas !== initialReplicas(job.replicas)) {
        await deps.store.updateJob(full.jobId, { desiredReplicas: initialReplicas(job.replicas) });
      }
      if (live.length === 0) {
        const last = await deps.store.currentServer(full.jobId);
        if (isScaledToZero(job, live)) {
          rec.warn(`job ${full.jobId} was scaled to zero; it no longer starts on demand`);
        } else {
          rec.warn(`job ${full.jobId} has no live server; nothing to terminate`);
        }
        return { server: last ?? null, servers: [] };
      }
      const after = await onEveryReplica(live, (server) => ctx.servers.terminate(rec, server, reason));
      return { server: after[0]!, servers: after };
    });
  });
}
