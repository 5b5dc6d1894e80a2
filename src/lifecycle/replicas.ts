/**
 * Acting on a job's replicas together: the operations that mean "the job" (DEPLOY_LOAD,
 * DEPLOY_UNLOAD, TERMINATE, DEPLOY_CREATE of several) apply their step to every one of
 * its servers at once, so a job with three replicas takes as long as its slowest one.
 */
import type { Placement, ServerRecord } from '../store/records.js';
import type { LifecycleContext } from './lifecycle-context.js';
import type { OperationRecorder } from './operation-recorder.js';

/**
 * Runs `step` on every server, at most `concurrency` at once (creations are bounded as
 * MODELDOCK_CREATE_CONCURRENCY bounds them across jobs). Every step runs to its end even
 * when another one fails (none is left half-done), then the first failure is thrown;
 * otherwise the servers after their step, in the order given.
 */
export async function onEveryReplica(
  servers: readonly ServerRecord[],
  step: (server: ServerRecord) => Promise<ServerRecord>,
  concurrency = Infinity,
): Promise<ServerRecord[]> {
  const settled: PromiseSettledResult<ServerRecord>[] = new Array(servers.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < servers.length; i = next++) {
      settled[i] = await step(servers[i]!).then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, servers.length) }, lane));
  const failure = settled.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<ServerRecord>).value);
}

/** The ids of the servers that are ready and really serve (worker running, model loaded). */
export async function servingReplicas(
  ctx: LifecycleContext,
  servers: readonly ServerRecord[],
): Promise<Set<string>> {
  const serving = new Set<string>();
  await Promise.all(
    servers.map(async (server) => {
      if (server.state === 'ready' && (await ctx.servers.isServing(server))) serving.add(server.serverId);
    }),
  );
  return serving;
}

/**
 * Every server brought to ready but those in `serving` (left as they are), as many at
 * once as MODELDOCK_CREATE_CONCURRENCY allows.
 */
export function bringUpReplicas(
  ctx: LifecycleContext,
  rec: OperationRecorder,
  servers: readonly ServerRecord[],
  serving: ReadonlySet<string>,
): Promise<ServerRecord[]> {
  return onEveryReplica(
    servers,
    async (server) => (serving.has(server.serverId) ? server : ctx.servers.bringUp(rec, server)),
    ctx.creations.limits.concurrency,
  );
}

/**
 * 429 unless `count` more servers fit: workers against MODELDOCK_MAX_SERVERS, or for a
 * shared job models on shared workers against MODELDOCK_MAX_SHARED_JOBS. Asked before an
 * operation is recorded, so a refused request leaves nothing behind.
 */
export function assertRoomFor(ctx: LifecycleContext, placement: Placement, count = 1): Promise<void> {
  return placement === 'shared' ? ctx.fleet.assertRoom(count) : ctx.creations.assertRoom(count);
}
