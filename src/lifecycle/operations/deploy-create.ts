/**
 * DEPLOY_CREATE: the job gets a server with its model loaded. Idempotent: a job whose
 * server is ready and serving is left alone (with a warning); one whose server exists in
 * another state is converged to ready; a job without a live server gets a new one, which
 * counts against the creation limits.
 */
import { assertSameJob, liveServer, validateRequest } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import type { JobRequest, OperationOutcome } from '../lifecycle-types.js';
import { runOperation } from '../operation-runner.js';

export async function deployCreate(
  ctx: LifecycleContext,
  request: JobRequest,
  reason: string,
): Promise<OperationOutcome> {
  await validateRequest(ctx.deps, request);
  return ctx.creations.admit(() =>
    ctx.locks.run(request.jobId, () => deployCreateLocked(ctx, request, reason)),
  );
}

async function deployCreateLocked(
  ctx: LifecycleContext,
  request: JobRequest,
  reason: string,
): Promise<OperationOutcome> {
  const { deps, servers } = ctx;
  const job = await deps.store.getJob(request.jobId);
  const server = await liveServer(deps, request.jobId);
  if (job && server) assertSameJob(job, request);
  if (!server) await ctx.creations.assertRoom();
  return runOperation(ctx, 'DEPLOY_CREATE', request, server, reason, async (rec) => {
    if (!job) await deps.store.ensureJob(request);
    else if (!server && (job.model !== request.model || job.dataset !== request.dataset)) {
      // The job's old server is gone; a new create may serve another model.
      await deps.store.updateJob(request.jobId, { model: request.model, dataset: request.dataset });
    }
    // An operator's request is a fresh start for an existing server's restart budget.
    let current = server && reason === 'request' ? await servers.renewRestartBudget(server) : server;
    if (current?.state === 'ready' && (await servers.isServing(current))) {
      rec.warn(`job ${request.jobId} already has a ready server (${current.serverId}); nothing to do`);
      return { server: current };
    }
    current ??= await servers.newServer(rec, request, 'job');
    return { server: await servers.bringUp(rec, current) };
  });
}
