/**
 * Acting on a job's replicas together: the operations that mean "the job" (DEPLOY_LOAD,
 * DEPLOY_UNLOAD, TERMINATE, DEPLOY_CREATE of several) apply their step to every one of
 * its servers at once, so a job with three replicas takes as long as its slowest one.
 */
import type { ServerRecord } from '../store/records.js';

/**
 * Runs `step` on every server at once. Every step runs to its end even when another one
 * fails (none is left half-done), then the first failure is thrown; otherwise the
 * servers after their step, in the order given.
 */
export async function onEveryReplica(
  servers: readonly ServerRecord[],
  step: (server: ServerRecord) => Promise<ServerRecord>,
): Promise<ServerRecord[]> {
  const settled = await Promise.allSettled(servers.map(step));
  const failure = settled.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<ServerRecord>).value);
}
