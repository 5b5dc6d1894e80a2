/**
 * TEMP: one-shot inference. A server of its own is created and loaded, runs over the
 * dataset (or the given inputs), and is removed whatever happened: a TEMP server never
 * outlives its operation. It counts against the creation limits like any creation.
 */
import { errorMessage } from '../../errors.js';
import { datasetThroughInfer } from '../dataset-through-infer.js';
import { liveServer, validateRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { OperationOutcome, TempRequest } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';

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
  await ctx.creations.assertRoom();
  return runOperation(ctx, 'TEMP', request, server, reason, async (rec) => {
    let temp = await servers.newServer(rec, request, 'temp');
    let result: unknown;
    let failure: { error: unknown } | undefined;
    try {
      temp = await servers.bringUp(rec, temp);
      const endpoint = temp.endpoint!;
      const serving = await deps.catalog.servingRuntime(request.model);
      result = await rec.step('infer', () =>
        request.inputs !== undefined
          ? deps.workers.infer(endpoint, request.jobId, request.inputs)
          : serving?.modeldockWorker === false
            ? // A foreign server has no batch endpoint: the dataset goes through its infer calls.
              datasetThroughInfer(deps, endpoint, request)
            : deps.workers.batch(endpoint, request.jobId, request.dataset),
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
