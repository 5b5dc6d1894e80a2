/** Looking at the router: ps, jobs, ops, events, pool, reconcile. */
import { readEvents } from '../client/sse.js';
import { age, bytes, duration, type Output } from '../client/output.js';
import type {
  EventView,
  JobView,
  OperationView,
  PoolView,
  ServerView,
  WorkerSampleView,
} from '../client/wire.js';
import type { CommandContext } from './context.js';

const LIVE_STATES = 'creating,loading,ready,unloading,unloaded,terminating,failed';

export async function ps({ api, out }: CommandContext, all: boolean): Promise<void> {
  const query = all ? '' : `?state=${LIVE_STATES}`;
  const [{ servers }, stats, { jobs }] = await Promise.all([
    api.get<{ servers: ServerView[] }>(`/v1/servers${query}`),
    // Memory is a nicety here: a router without stats still lists its servers.
    api.get<{ workers: WorkerSampleView[] }>('/v1/stats').catch(() => ({ workers: [] })),
    api.get<{ jobs: JobView[] }>('/v1/jobs'),
  ]);
  const memory = new Map(stats.workers.map((w) => [w.container_name, w.memory_bytes]));
  const replicas = new Map(jobs.map((j) => [j.job_id, j.replicas]));
  if (out.json)
    return out.data({
      servers: servers.map((s) => ({
        ...s,
        memory_bytes: memory.get(s.container_name) ?? null,
        replicas: s.kind === 'job' ? (replicas.get(s.job_id) ?? null) : null,
      })),
    });
  out.table(
    ['JOB', 'REPLICAS', 'SERVER', 'STATE', 'MODEL', 'CONTAINER', 'AGE', 'MEMORY', 'LAST INFERENCE'],
    servers.map((s) => [
      s.job_id,
      // The job's ready / desired replicas, on each of its servers' rows.
      s.kind === 'job' ? replicaCount(replicas.get(s.job_id)) : 'temp',
      s.server_id,
      out.state(s.state),
      s.model,
      // A shared server's container is the shared worker it is loaded in (with other jobs).
      s.placement === 'shared' ? `${s.container_name} (shared)` : s.container_name,
      age(s.created_at),
      s.state === 'terminated' ? '-' : bytes(memory.get(s.container_name)),
      s.last_used_at ? `${age(s.last_used_at)} ago` : '-',
    ]),
  );
}

export async function jobs({ api, out }: CommandContext): Promise<void> {
  const { jobs } = await api.get<{ jobs: JobView[] }>('/v1/jobs');
  if (out.json) return out.data({ jobs });
  out.table(
    ['JOB', 'STATE', 'PLACEMENT', 'REPLICAS', 'MIN..MAX', 'MODEL', 'DATASET', 'SERVERS', 'UPDATED'],
    jobs.map((j) => [
      j.job_id,
      out.state(j.state),
      j.placement,
      replicaCount(j.replicas),
      `${j.replicas.min}..${j.replicas.max}`,
      j.model,
      j.dataset,
      j.servers.length > 0 ? j.servers.map((s) => s.server_id).join(',') : (j.server?.server_id ?? '-'),
      `${age(j.updated_at)} ago`,
    ]),
  );
}

/** `ready/desired`, as kubectl shows a Deployment's replicas. */
function replicaCount(replicas: JobView['replicas'] | undefined): string {
  return replicas ? `${replicas.ready}/${replicas.desired}` : '-';
}

export function stepSummary(operation: OperationView): string {
  return operation.steps.map((s) => `${s.name} ${duration(s.duration_ms)}`).join(' · ');
}

function operationRow(out: Output, o: OperationView): string[] {
  return [
    o.operation_id,
    o.type,
    o.job_id,
    out.state(o.status),
    duration(o.duration_ms),
    `${age(o.started_at)} ago`,
    stepSummary(o),
  ];
}

const OPERATION_HEAD = ['OPERATION', 'TYPE', 'JOB', 'STATUS', 'DURATION', 'STARTED', 'STEPS'];

export async function ops(
  ctx: CommandContext,
  options: { job?: string | undefined; follow: boolean; limit: number },
): Promise<void> {
  const { api, out, signal } = ctx;
  const query = new URLSearchParams({ limit: String(options.limit) });
  if (options.job) query.set('job_id', options.job);
  // Subscribe before listing, so that nothing finishing in between is missed.
  const events = options.follow ? await api.stream('/v1/events', signal) : undefined;
  const { operations } = await api.get<{ operations: OperationView[] }>(`/v1/operations?${query}`);
  const oldestFirst = [...operations].reverse();
  if (out.json) {
    if (!options.follow) return out.data({ operations });
    for (const o of oldestFirst) out.record(o);
  } else {
    out.table(
      OPERATION_HEAD,
      oldestFirst.map((o) => operationRow(out, o)),
    );
  }
  if (!events?.body) return;
  const shown = new Set(operations.map((o) => o.operation_id));
  for await (const message of readEvents(events.body, signal)) {
    if (message.event !== 'operation') continue;
    const { operation } = JSON.parse(message.data) as { operation: OperationView };
    if (options.job && operation.job_id !== options.job) continue;
    if (shown.has(operation.operation_id)) continue;
    shown.add(operation.operation_id);
    if (out.json) out.record(operation);
    else
      out.line(
        [
          operation.operation_id,
          operation.type,
          operation.job_id,
          out.state(operation.status),
          duration(operation.duration_ms),
          stepSummary(operation),
        ].join('  '),
      );
  }
}

/** One line per event, as `docker events` does. */
export function describeEvent(out: Output, event: EventView): string {
  const time = new Date().toISOString().slice(11, 23);
  if (event.type === 'server') {
    const s = event.server;
    return `${out.c.dim(time)}  server     ${s.job_id}  ${s.server_id}  ${out.state(s.state)}${s.reason ? `  ${out.c.dim(s.reason)}` : ''}`;
  }
  const o = event.operation;
  const error = o.error ? `  ${out.c.red(o.error.message)}` : '';
  return `${out.c.dim(time)}  operation  ${o.job_id}  ${o.type}  ${out.state(o.status)}  ${duration(o.duration_ms)}${error}`;
}

/**
 * Like `kubectl get -w`: the live servers as they are now, then every change. The stream
 * is opened first, so nothing happening between the two is lost.
 */
export async function events({ api, out, signal }: CommandContext): Promise<void> {
  const response = await api.stream('/v1/events', signal);
  const { servers } = await api.get<{ servers: ServerView[] }>(`/v1/servers?state=${LIVE_STATES}`, signal);
  for (const server of servers) {
    const event: EventView = { type: 'server', server };
    if (out.json) out.record(event);
    else out.line(describeEvent(out, event));
  }
  if (!response.body) return;
  for await (const message of readEvents(response.body, signal)) {
    if (message.event !== 'server' && message.event !== 'operation') continue;
    const event = JSON.parse(message.data) as EventView;
    if (out.json) out.record(event);
    else out.line(describeEvent(out, event));
  }
}

export async function pool({ api, out }: CommandContext): Promise<void> {
  const p = await api.get<PoolView>('/v1/pool');
  if (out.json) return out.data(p);
  out.fields([
    ['configured size', String(p.size)],
    ['kept now', `${p.limit}${p.bounded_by ? ` (bounded by ${p.bounded_by})` : ''}`],
    ['ready', String(p.ready)],
    ['starting', String(p.filling)],
    ['per worker', `${bytes(p.worker_bytes)}${p.worker_bytes_measured ? ' (measured)' : ' (estimate)'}`],
    ['memory budget free', p.budget_free_bytes === null ? 'no budget' : bytes(p.budget_free_bytes)],
  ]);
  // The foreign serving runtimes' pools (MODELDOCK_WARM_POOL=…,mlserver=1), one row each.
  const foreign = p.runtimes.filter((r) => r.runtime !== p.runtime && r.size > 0);
  if (foreign.length === 0) return;
  out.line();
  out.table(
    ['SERVING RUNTIME', 'SIZE', 'KEPT NOW', 'READY', 'STARTING', 'PER SERVER'],
    foreign.map((r) => [
      r.runtime,
      String(r.size),
      `${r.limit}${r.bounded_by ? ` (${r.bounded_by})` : ''}`,
      String(r.ready),
      String(r.filling),
      `${bytes(r.worker_bytes)}${r.worker_bytes_measured ? '' : ' (estimate)'}`,
    ]),
  );
}

export async function reconcile({ api, out }: CommandContext): Promise<void> {
  const report = await api.post<Record<string, unknown>>('/v1/reconcile');
  if (out.json) return out.data(report);
  out.fields(
    Object.entries(report ?? {}).map(([key, value]) => [
      key.replace(/([A-Z])/g, ' $1').toLowerCase(),
      key === 'durationMs' ? duration(Number(value)) : String(value),
    ]),
  );
}
