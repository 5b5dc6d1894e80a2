/**
 * DEPLOY_LOAD: the job's existing server is brought to ready (started if stopped, model
 * loaded if unloaded, recreated if its container vanished). The locked form is also how
 * a request loads a cold job on demand and how a worker that lost its model is healed.
 */
import { requireLiveServer, resolveRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';

export async function deployLoad(
  ctx: LifecycleContext,
  request: JobRequest | { jobId: string },
  reason: string,
): Promise<OperationOutcome> {
  const full = await resolveRequest(ctx.deps, request);
  return ctx.locks.run(full.jobId, () => deployLoadLocked(ctx, full, reason));
}

/** DEPLOY_LOAD for a caller that already holds the job's lock. */
export async function deployLoadLocked(
  ctx: LifecycleContext,
  request: JobRequest,
  reason: string,
): Promise<OperationOutcome> {
  const { servers } = ctx;
  const found = await requireLiveServer(ctx.deps, request.jobId);
  return runOperation(ctx, 'DEPLOY_LOAD', request, found, reason, async (rec) => {
    // An operator's load is a fresh start: worker deaths are counted in a row from here.
    const server = reason === 'request' ? await servers.renewRestartBudget(found) : found;
    if (server.state === 'ready' && (await servers.isServing(server))) {
      rec.warn(`server ${server.serverId} is already loaded; nothing to do`);
      return { server };
    }
    return { server: await servers.bringUp(rec, server) };
  });
}
