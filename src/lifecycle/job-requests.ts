/**
 * What an operation checks before it acts: the request names a valid job, model and
 * dataset; a job keeps the model and dataset it was created with; the job and its live
 * server exist when the operation needs them. Every refusal is a typed error naming the
 * fix; nothing here changes state.
 */
import { ConflictError, NotFoundError } from '../errors.js';
import { validateId } from '../ids.js';
import type { JobRecord, ServerRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { Catalog } from './catalog.js';
import type { JobRequest } from './lifecycle-types.js';

type Sources = { store: Store; catalog: Catalog };

export async function validateRequest(deps: Sources, request: JobRequest): Promise<void> {
  validateId('job_id', request.jobId);
  await deps.catalog.requireModel(request.model);
  await deps.catalog.requireDataset(request.dataset);
  // A model no serving runtime serves is refused before anything is created.
  await deps.catalog.servingRuntime(request.model);
}

/** Fill model/dataset from the job record when the caller gave only the job id. */
export async function resolveRequest(
  deps: Sources,
  request: JobRequest | { jobId: string },
): Promise<JobRequest> {
  validateId('job_id', request.jobId);
  const job = await requireJob(deps, request.jobId);
  if ('model' in request) {
    validateId('model', request.model);
    validateId('dataset', request.dataset);
    assertSameJob(job, request);
    return request;
  }
  return { jobId: job.jobId, model: job.model, dataset: job.dataset };
}

export function assertSameJob(job: JobRecord, request: JobRequest): void {
  if (job.model !== request.model || job.dataset !== request.dataset) {
    throw new ConflictError(
      `job ${job.jobId} serves model ${job.model} on dataset ${job.dataset}, not ${request.model} on ${request.dataset}; TERMINATE it first to change`,
    );
  }
}

export async function requireJob(deps: Sources, jobId: string): Promise<JobRecord> {
  const job = await deps.store.getJob(jobId);
  if (!job) throw new NotFoundError(`job ${jobId} not found`);
  return job;
}

export async function liveServer(deps: Sources, jobId: string): Promise<ServerRecord | undefined> {
  const server = await deps.store.currentServer(jobId);
  return server && server.state !== 'terminated' ? server : undefined;
}

export async function requireLiveServer(deps: Sources, jobId: string): Promise<ServerRecord> {
  await requireJob(deps, jobId);
  const server = await liveServer(deps, jobId);
  if (!server) {
    throw new ConflictError(
      `job ${jobId} has no live server (terminated or never created); send DEPLOY_CREATE`,
    );
  }
  return server;
}
