/**
 * Adoption: a running worker that carries this router's labels but has no server record
 * (the record was lost to a power cut, or the database was deleted or restored from an
 * older backup) is taken back, never destroyed: its job and server records are rebuilt
 * from its labels and from what the worker itself says it has loaded, and it keeps
 * serving. Kubernetes controllers adopt an orphan that matches their selector the same way.
 *
 * Only a worker that cannot be adopted is removed — one that is not running (a container
 * created but never started), a TEMP worker (its operation cannot be resumed), one whose
 * model is not in the model store, or one nothing says the job of — and the RECONCILE
 * record of its removal says why. Both run under the job's lock, recorded as RECONCILE
 * operations (reason `adopted` / `orphan_removed`).
 */
import { errorMessage } from '../../errors.js';
import { LABELS, type WorkerInfo } from '../../runtime/runtime.js';
import type { RepositoryEntry } from '../../runtime/worker-client.js';
import { formatServerId } from '../../store/server-id.js';
import type { ServerRecord } from '../../store/records.js';
import { liveServers } from '../job-requests.js';
import type { LifecycleContext } from '../lifecycle-context.js';
import { runOperation } from '../operation-runner.js';

/** What adoption found a worker to be: whose it is and what it serves, or why it cannot be taken back. */
type Finding =
  | { adoptable: true; jobId: string; model: string; dataset: string; loaded: boolean }
  | { adoptable: false; jobId: string; model: string; why: string };

export type AdoptionOutcome = { adopted: ServerRecord } | { removed: string };

/** The job an orphan belongs to, as far as its labels say (the lock to take before adopting it). */
export function orphanJobId(worker: WorkerInfo): string {
  return worker.labels[LABELS.job] ?? worker.name;
}

/**
 * Adopt the worker as server `serverId` (`inf-NNNN`, from its label or name), or remove
 * it saying why. The caller holds the job's lock and has checked that no record exists.
 */
export async function adoptOrRemove(
  ctx: LifecycleContext,
  worker: WorkerInfo,
  serverId: string,
  number: number,
): Promise<AdoptionOutcome> {
  const { deps } = ctx;
  const finding = await examine(ctx, worker);
  if (!finding.adoptable) {
    await runOperation(
      ctx,
      'RECONCILE',
      { jobId: finding.jobId, model: finding.model, dataset: '' },
      undefined,
      'orphan_removed',
      async (rec) => {
        rec.warn(`removed worker ${worker.name} (no record of ${serverId}): ${finding.why}`);
        await rec.step('remove', () => deps.runtime.remove(worker.name));
        return { server: null };
      },
    );
    deps.logger.info({ worker: worker.name, serverId, why: finding.why }, 'removed orphan worker');
    return { removed: finding.why };
  }
  const { jobId, model, dataset, loaded } = finding;
  const outcome = await runOperation(
    ctx,
    'RECONCILE',
    { jobId, model, dataset },
    undefined,
    'adopted',
    async (rec) => {
      const job = await deps.store.ensureJob({ jobId, model, dataset });
      if (job.model !== model) {
        rec.warn(`job ${jobId} is recorded with model ${job.model}; the adopted worker serves ${model}`);
      }
      // Later allocations must not hand this number out again.
      await deps.store.reserveServerNumber(number);
      const now = new Date().toISOString();
      const server = await ctx.servers.adopt(rec, {
        serverId,
        number,
        jobId,
        model,
        dataset,
        kind: 'job',
        placement: 'dedicated',
        state: loaded ? 'ready' : 'unloaded',
        reason: `adopted: worker ${worker.name} was running without a record`,
        runtime: deps.runtime.kind,
        workerName: worker.name,
        workerId: worker.id,
        endpoint: worker.endpoint,
        restarts: 0,
        loadedAt: loaded ? now : null,
        lastUsedAt: null,
        terminatedAt: null,
      });
      rec.warn(
        `adopted worker ${worker.name} as ${serverId} of job ${jobId} (model ${model}, ${loaded ? 'loaded' : 'not loaded'})`,
      );
      // Every adopted replica is kept: the job's desired count (and bound) cover them all,
      // and the autoscaler takes it from there.
      const live = (await liveServers(deps, jobId)).length;
      if (live > job.desiredReplicas) {
        await deps.store.updateJob(jobId, {
          desiredReplicas: live,
          replicas: { min: job.replicas.min, max: Math.max(job.replicas.max, live) },
        });
      }
      return { server };
    },
  );
  deps.logger.info({ worker: worker.name, serverId, jobId, model }, 'adopted orphan worker');
  return { adopted: outcome.server! };
}

/**
 * A model loaded on one of this router's shared workers that no live record names (the
 * database was lost or restored from an older backup): adopted as a ready shared server
 * of its job when the worker says which store model and dataset it was loaded for and
 * the job has no live server elsewhere; otherwise unloaded from the worker (a TEMP's
 * model, a copy the job no longer uses), with a RECONCILE record saying why. The caller
 * holds the job's lock (the model's name) and has checked that no live record names it
 * on this worker.
 */
export async function adoptSharedModel(
  ctx: LifecycleContext,
  worker: WorkerInfo,
  entry: RepositoryEntry,
): Promise<'adopted' | 'removed'> {
  const { deps } = ctx;
  const endpoint = worker.endpoint!;
  const jobId = entry.name;
  const model = entry.model_id;
  const dataset = entry.dataset;
  const elsewhere = (await liveServers(deps, jobId)).filter((s) => s.state !== 'failed');
  const why =
    !model || !dataset
      ? 'the worker does not say which model and dataset it was loaded for (a TEMP, or loaded by hand)'
      : elsewhere.length > 0
        ? `job ${jobId} is served by ${elsewhere.map((s) => s.serverId).join(', ')}: this copy is not used`
        : !(await deps.catalog.requireModel(model).then(
              () => true,
              () => false,
            ))
          ? `its model "${model}" is not in the model store`
          : undefined;
  if (why !== undefined || !model || !dataset) {
    await runOperation(
      ctx,
      'RECONCILE',
      { jobId, model: model ?? '', dataset: dataset ?? '' },
      undefined,
      'orphan_removed',
      async (rec) => {
        rec.warn(`unloaded model ${jobId} from shared worker ${worker.name}: ${why}`);
        await rec.step('unload', () => deps.workers.unload(endpoint, jobId));
        return { server: null };
      },
    );
    deps.logger.info(
      { worker: worker.name, model: jobId, why },
      'unloaded an unrecorded model from a shared worker',
    );
    return 'removed';
  }
  await runOperation(ctx, 'RECONCILE', { jobId, model, dataset }, undefined, 'adopted', async (rec) => {
    const job = await deps.store.ensureJob({ jobId, model, dataset, placement: 'shared' });
    if (job.placement !== 'shared') await deps.store.updateJob(jobId, { placement: 'shared' });
    const number = await deps.store.allocateServerNumber();
    const now = new Date().toISOString();
    const server = await ctx.servers.adopt(rec, {
      serverId: formatServerId(number),
      number,
      jobId,
      model,
      dataset,
      kind: 'job',
      placement: 'shared',
      state: 'ready',
      reason: `adopted: model loaded on shared worker ${worker.name} without a record`,
      runtime: deps.runtime.kind,
      workerName: worker.name,
      workerId: worker.id,
      endpoint,
      restarts: 0,
      loadedAt: now,
      lastUsedAt: null,
      terminatedAt: null,
    });
    rec.warn(`adopted model ${jobId} on shared worker ${worker.name} as ${server.serverId} (model ${model})`);
    return { server };
  });
  deps.logger.info({ worker: worker.name, jobId, model }, 'adopted a model on a shared worker');
  return 'adopted';
}

/**
 * A `ready` or `unloaded` record of a running worker, checked against what the worker
 * says it has loaded (at start-up: the records may come from an older backup). Returns
 * the record as it is, or as corrected. The caller holds the job's lock.
 */
export async function realign(
  ctx: LifecycleContext,
  server: ServerRecord,
  worker: WorkerInfo,
): Promise<ServerRecord> {
  const { deps } = ctx;
  if ((server.state !== 'ready' && server.state !== 'unloaded') || !worker.running || !worker.endpoint)
    return server;
  let loaded: boolean;
  try {
    loaded = await deps.workers.isLoaded(worker.endpoint, server.jobId);
  } catch {
    return server; // Not answering: the reconciler's usual checks deal with it.
  }
  if (loaded === (server.state === 'ready')) return server;
  const now = new Date().toISOString();
  deps.logger.info({ serverId: server.serverId, loaded }, 'record realigned with its worker');
  // Through the state in between, as an unload or a load would go.
  const passing = await ctx.servers.transition(server, loaded ? 'loading' : 'unloading');
  return ctx.servers.transition(passing, loaded ? 'ready' : 'unloaded', {
    reason: `realigned at start-up: the worker has the model ${loaded ? 'loaded' : 'not loaded'}, the record said ${server.state}`,
    endpoint: worker.endpoint,
    workerId: worker.id,
    loadedAt: loaded ? now : null,
  });
}

/** Whose the worker is and what it serves: its labels first, then the worker's own answer. */
async function examine(ctx: LifecycleContext, worker: WorkerInfo): Promise<Finding> {
  const { deps } = ctx;
  const labels = worker.labels;
  const labelledJob = labels[LABELS.job];
  const refuse = (why: string, jobId = labelledJob ?? worker.name): Finding => ({
    adoptable: false,
    jobId,
    model: labels[LABELS.model] ?? '',
    why,
  });
  if (labels[LABELS.kind] === 'temp') {
    return refuse('a TEMP worker whose operation record is gone: its operation cannot be resumed');
  }
  if (!worker.running || !worker.endpoint) {
    return refuse(
      `it is not running (${worker.status}): it never started or has stopped, nothing serves on it`,
    );
  }
  let loadedNames: string[];
  try {
    await deps.workers.waitUntilReady(worker.endpoint, {
      timeoutMs: deps.options.readyTimeoutMs,
      isAlive: async () => (await deps.runtime.inspect(worker.name))?.running === true,
    });
    loadedNames = (await deps.workers.index(worker.endpoint))
      .filter((entry) => entry.state === 'READY')
      .map((entry) => entry.name);
  } catch (error) {
    return refuse(`it does not answer (${errorMessage(error)})`);
  }
  // A worker the warm pool handed over keeps the pool's labels: what it has loaded names its job.
  const jobId = labelledJob ?? (loadedNames.length === 1 ? loadedNames[0] : undefined);
  if (!jobId) return refuse('it carries no job label and serves no single model: nothing says whose it is');
  const job = await deps.store.getJob(jobId);
  const model = labels[LABELS.model] ?? job?.model;
  const dataset = labels[LABELS.dataset] ?? job?.dataset;
  if (!model || !dataset) {
    return refuse(
      `neither its labels nor a record of job ${jobId} name its ${model ? 'dataset' : 'model'}`,
      jobId,
    );
  }
  try {
    await deps.catalog.requireModel(model);
  } catch {
    return refuse(`its model "${model}" is not in the model store`, jobId);
  }
  return { adoptable: true, jobId, model, dataset, loaded: loadedNames.includes(jobId) };
}
