/**
 * TEMP: one-shot inference. A server of its own is created and loaded, runs over the
 * dataset (or the given inputs), and is removed whatever happened: a TEMP server never
 * outlives its operation. It counts against the creation limits like any creation.
 */
import { errorMessage } from '../../errors.js';
import { datasetThroughInfer } from '../dataset-through-infer.js';
import { liveServer, placementFor, validateRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { OperationOutcome, TempRequest } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';
import { assertRoomFor } from '../replicas.js';
import { servedName } from '../shared-fleet.js';

export async function temp(
  ctx: LifecycleContext,
  request: TempRequest,
  reason: string,
): Promise<OperationOutcome> {
  await validateRequest(ctx.deps, request);
  return ctx.creations.admit(() => ctx.locks.run(request.jobId, () => tempLocked(ctx, request, reason)));
}

async function tempLocked(
  ctx: LifecycleContext,
  request: TempRequest,
  reason: string,
): Promise<OperationOutcome> {
  const { deps, servers } = ctx;
  const server = await liveServer(deps, request.jobId);
  // A job's TEMP runs where the job's servers live (or as it asks): on a shared worker
  // it is one more model there, under a name of its own, and starts no container.
  const job = await deps.store.getJob(request.jobId);
  const placement = await placementFor(deps, request, job, []);
  await assertRoomFor(ctx, placement);
  return runOperation(ctx, 'TEMP', request, server, reason, async (rec) => {
    let temp = await servers.newServer(rec, request, 'temp', placement);
    let result: unknown;
    let failure: { error: unknown } | undefined;
    try {
      temp = await servers.bringUp(rec, temp);
      const endpoint = temp.endpoint!;
      const name = servedName(temp);
      const serving = await deps.catalog.servingRuntime(request.model);
      result = await rec.step('infer', () =>
        request.inputs !== undefined
          ? deps.workers.infer(endpoint, name, request.inputs)
          : serving?.modeldockWorker === false
            ? // A foreign server has no batch endpoint: the dataset goes through its infer calls.
              datasetThroughInfer(deps, endpoint, request)
            : deps.workers.batch(endpoint, name, request.dataset),
      );
    } catch (error) {
      failure = { error };
    }
    // Deleted even on failure: a TEMP server never outlives its operation.
    try {
      const latest = (await deps.store.getServer(temp.serverId).catch(() => undefined)) ?? temp;
      temp = await servers.terminate(rec, latest, 'temp_done');
    } catch (cleanupError) {
      if (!failure) throw cleanupError;
      // The TEMP already failed: that is its answer, and the removal's failure, which
      // would otherwise replace it, is kept beside it (the reconciler removes the server).
      rec.warn(`the TEMP server ${temp.serverId} could not be removed: ${errorMessage(cleanupError)}`);
      deps.logger.warn(
        { serverId: temp.serverId, err: errorMessage(cleanupError) },
        'a failed TEMP could not remove its server',
      );
    }
    if (failure) throw failure.error;
    return { server: temp, result };
  });
}
