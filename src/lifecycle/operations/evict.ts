/**
 * EVICT: a shared job's model leaves its shared worker to make room for another's
 * (docs/operations.md#memory-on-shared-workers). Recorded as an operation of the evicted
 * job, reason `lru` (or `lru_young` when one loaded less than the minimum residency ago
 * had to go), with the job it made room for; reason `headroom` when it went ahead of need
 * (the fleet passed its high watermark: SharedFleet.keepHeadroom); reason `drain` when its
 * worker is being emptied to be closed (the fleet measured over its budget:
 * SharedFleet.shrinkWhileOver). The server is then `unloaded`, reason `evicted`, and the
 * job's next request loads it again on demand and waits for it.
 */
import type { ServerRecord } from '../../store/records.js';
import type { EvictionCause } from '../shared-fleet.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';

const WHY: Record<'headroom' | 'drain', (worker: string) => string> = {
  headroom: (worker) =>
    `evicted from shared worker ${worker} ahead of need: the shared workers passed their high watermark under MODELDOCK_MEMORY_BUDGET`,
  drain: (worker) =>
    `evicted from shared worker ${worker}, which is being drained and closed: the shared workers measured over MODELDOCK_MEMORY_BUDGET`,
};

/**
 * Evict `victim`. Its job's lock is taken in the same tick as this call (no await comes
 * first): the placement that chose it saw the job idle in that tick, so nothing else can
 * have started on it, and waiting for its lock could never wait on the placement.
 */
export function evict(
  ctx: LifecycleContext,
  victim: ServerRecord,
  cause: EvictionCause,
): Promise<OperationOutcome | undefined> {
  return ctx.locks.run(victim.jobId, async () => {
    const server = await ctx.deps.store.getServer(victim.serverId);
    // Gone elsewhere meanwhile (unloaded, terminated, re-placed): nothing to evict.
    if (server?.state !== 'ready' || server.workerName !== victim.workerName) return undefined;
    const request = { jobId: server.jobId, model: server.model, dataset: server.dataset };
    const young = typeof cause === 'object' && cause.young;
    const reason = typeof cause === 'string' ? cause : young ? 'lru_young' : 'lru';
    return runOperation(ctx, 'EVICT', request, server, reason, async (rec) => {
      rec.warn(
        typeof cause === 'string'
          ? WHY[cause](server.workerName)
          : `evicted from shared worker ${server.workerName} to make room for job ${cause.forJob}`,
      );
      const after = await ctx.servers.unload(rec, server, 'evicted');
      ctx.deps.metrics.evictions.inc({ residency: young ? 'young' : 'old' });
      return { server: after, servers: [after] };
    });
  });
}
