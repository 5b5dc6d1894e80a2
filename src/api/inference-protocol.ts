/**
 * What the router's two Open Inference Protocol front ends share (HTTP `/v2` in
 * routes/v2.ts and gRPC in grpc/): jobs as the model repository, a job's readiness, and
 * the statistics of every loaded job gathered from the workers. Both present the job id
 * as the model name.
 */
import { errorMessage } from '../errors.js';
import { validateId } from '../ids.js';
import type { Lifecycle } from '../lifecycle/lifecycle.js';
import { LIVE_STATES } from '../lifecycle/state-machine.js';
import type { ServerRecord } from '../store/records.js';
import type { WorkerClient } from '../runtime/worker-client.js';
import type { Store } from '../store/store.js';
import type { Logger } from 'pino';

/** The protocol extensions the router serves (HTTP `GET /v2`, gRPC ServerMetadata): exactly these. */
export const ROUTER_EXTENSIONS = [
  'model_repository',
  'model_configuration',
  'statistics',
  'binary_tensor_data',
];

export interface RepositoryEntryJson {
  name: string;
  version: string;
  state: 'READY' | 'LOADING' | 'UNAVAILABLE';
  reason: string;
}

export interface ProtocolDeps {
  lifecycle: Pick<Lifecycle, 'acquireRoute'>;
  workers: Pick<WorkerClient, 'modelJson'>;
  store: Pick<Store, 'listJobs' | 'listServers'>;
  logger?: Pick<Logger, 'warn'>;
}

/** Every job as a repository entry, with its server's state in the protocol's words. */
export async function repositoryIndex(
  store: ProtocolDeps['store'],
  options: { readyOnly?: boolean } = {},
): Promise<RepositoryEntryJson[]> {
  const [jobs, live] = await Promise.all([
    store.listJobs(),
    store.listServers({ kind: 'job', states: LIVE_STATES }),
  ]);
  // Per job, its most useful replica: a ready one, else one being started, else its first.
  const rank = (state: string) =>
    state === 'ready' ? 2 : state === 'loading' || state === 'creating' ? 1 : 0;
  const best = new Map<string, ServerRecord>();
  for (const server of live) {
    const seen = best.get(server.jobId);
    if (!seen || rank(server.state) > rank(seen.state)) best.set(server.jobId, server);
  }
  const entries = jobs.map((job): RepositoryEntryJson => {
    const server = best.get(job.jobId);
    const state = server?.state;
    return {
      name: job.jobId,
      version: '1',
      state:
        state === 'ready' ? 'READY' : state === 'loading' || state === 'creating' ? 'LOADING' : 'UNAVAILABLE',
      reason: server?.reason ?? '',
    };
  });
  return options.readyOnly ? entries.filter((e) => e.state === 'READY') : entries;
}

/** True when the job's server is ready for inference (no on-demand load: a probe loads nothing). */
export async function isJobReady(store: ProtocolDeps['store'], jobId: string): Promise<boolean> {
  validateId('job_id', jobId);
  return (await store.listServers({ jobId, kind: 'job', states: ['ready'] })).length > 0;
}

/**
 * The statistics extension over all jobs: each ready job's statistics from its worker
 * (nothing is loaded for it). A worker that cannot answer is left out and logged, as
 * Triton lists only the models it can report on.
 */
export async function allModelStatistics(deps: ProtocolDeps): Promise<{ model_stats: unknown[] }> {
  const ready = await repositoryIndex(deps.store, { readyOnly: true });
  const stats = await Promise.all(
    ready.map(async ({ name }) => {
      try {
        const route = await deps.lifecycle.acquireRoute(name);
        try {
          const answer = await deps.workers.modelJson<{ model_stats?: unknown[] }>(
            route.endpoint,
            `${route.modelPath}/stats`,
          );
          return answer?.model_stats ?? [];
        } finally {
          route.release();
        }
      } catch (error) {
        deps.logger?.warn({ job: name, err: errorMessage(error) }, 'no statistics from the job’s worker');
        return [];
      }
    }),
  );
  return { model_stats: stats.flat() };
}
