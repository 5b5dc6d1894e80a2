/**
 * What an operation checks before it acts: the request names a valid job, model and
 * dataset; a job keeps the model and dataset it was created with; the job and its live
 * server exist when the operation needs them. Every refusal is a typed error naming the
 * fix; nothing here changes state.
 */
import { ConflictError, InvalidInputError, NotFoundError } from '../errors.js';
import { validateId } from '../ids.js';
import type { JobRecord, Placement, ReplicaBounds, ServerRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { Catalog } from './catalog.js';
import type { JobRequest, LifecycleDeps } from './lifecycle-types.js';
import { LIVE_STATES } from './state-machine.js';

/** More replicas than this for one job is a typo, not a plan (MODELDOCK_MAX_SERVERS bounds all jobs). */
export const MAX_REPLICAS = 64;

type Sources = { store: Store; catalog: Catalog };
type StoreOnly = { store: Store };

export async function validateRequest(deps: Sources, request: JobRequest): Promise<void> {
  validateId('job_id', request.jobId);
  if (request.replicas) validateReplicas(request.replicas);
  if (request.scaleTarget !== undefined && request.scaleTarget !== null)
    validateScaleTarget(request.scaleTarget);
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

/** `{min, max}` with 0 <= min <= max, 1 <= max <= MAX_REPLICAS; InvalidInputError (400) otherwise. */
export function validateReplicas(replicas: ReplicaBounds): void {
  const { min, max } = replicas;
  if (
    !Number.isInteger(min) ||
    !Number.isInteger(max) ||
    min < 0 ||
    max < 1 ||
    min > max ||
    max > MAX_REPLICAS
  ) {
    throw new InvalidInputError(
      `replicas must be {"min": m, "max": n} with whole numbers 0 <= m <= n and 1 <= n <= ${MAX_REPLICAS}; got ${JSON.stringify(replicas)}`,
    );
  }
}

export function validateScaleTarget(target: number): void {
  if (!(Number.isFinite(target) && target > 0 && target <= 10_000)) {
    throw new InvalidInputError(`scale_target must be a number of in-flight requests above 0; got ${target}`);
  }
}

/** The job's live servers (its replicas, in any state but terminated), oldest first. */
export function liveServers(deps: StoreOnly, jobId: string): Promise<ServerRecord[]> {
  return deps.store.listServers({ jobId, kind: 'job', states: LIVE_STATES });
}

/** The job's first live server (the one answers name), or undefined. */
export async function liveServer(deps: StoreOnly, jobId: string): Promise<ServerRecord | undefined> {
  return (await liveServers(deps, jobId))[0];
}

/**
 * A job scaled to zero (min 0, idle): it has no live server but is not terminated; its
 * next request (or a DEPLOY_LOAD) starts a replica.
 */
export function isScaledToZero(job: JobRecord, live: readonly ServerRecord[]): boolean {
  return live.length === 0 && job.desiredReplicas === 0;
}

export async function requireLiveServers(deps: Sources, jobId: string): Promise<ServerRecord[]> {
  await requireJob(deps, jobId);
  const servers = await liveServers(deps, jobId);
  if (servers.length === 0) {
    throw new ConflictError(
      `job ${jobId} has no live server (terminated or never created); send DEPLOY_CREATE`,
    );
  }
  return servers;
}

/**
 * Where a request's new servers live: as it asks, else as its job does, else
 * MODELDOCK_PLACEMENT. A shared worker is modeldock's own worker, so a model another
 * serving runtime serves is placed on a worker of its own: refused (400) when the request
 * asked for shared, dedicated when only the router's default said so. A job with live
 * servers keeps its placement (409: TERMINATE it first to change).
 */
export async function placementFor(
  deps: Pick<LifecycleDeps, 'catalog' | 'options'>,
  request: JobRequest,
  job: JobRecord | undefined,
  live: readonly ServerRecord[],
): Promise<Placement> {
  const asked = request.placement;
  if (job && live.length > 0 && asked !== undefined && asked !== job.placement) {
    throw new ConflictError(
      `job ${job.jobId} is placed ${job.placement}, not ${asked}; TERMINATE it first to change its placement`,
    );
  }
  const placement = asked ?? job?.placement ?? deps.options.shared?.placement ?? 'dedicated';
  if (placement === 'dedicated') return placement;
  const serving = await deps.catalog.servingRuntime(request.model);
  if (!serving || serving.modeldockWorker) return placement;
  if (asked === 'shared') {
    throw new InvalidInputError(
      `model ${request.model} is served by ${serving.name}, and shared workers are modeldock's own worker; place the job dedicated`,
    );
  }
  return 'dedicated';
}
