/**
 * Samples every running worker's CPU and memory for `GET /v1/stats`. Runtimes report CPU
 * time as a counter; the share of a CPU is the counter's growth over the time between
 * two samples, so the sampler keeps each worker's previous sample (only for workers that
 * still run: the map never outgrows the live workers).
 */
import { LABELS, type Runtime, type WorkerStats } from '../runtime/runtime.js';
import { SERVER_STATES } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { WorkerSampleView } from './wire-types.js';

const LIVE_STATES = SERVER_STATES.filter((s) => s !== 'terminated');

/** One running worker's sample, as `GET /v1/stats` answers it. */
export type WorkerSample = WorkerSampleView;

export class WorkerStatsSampler {
  private readonly previous = new Map<string, { id: string; stats: WorkerStats }>();

  constructor(
    private readonly runtime: Runtime,
    private readonly store: Store,
  ) {}

  async sample(): Promise<WorkerSample[]> {
    const [workers, servers] = await Promise.all([
      this.runtime.list(),
      this.store.listServers({ states: [...LIVE_STATES] }),
    ]);
    const byWorker = new Map(servers.map((s) => [s.workerName, s]));
    const running = workers.filter((w) => w.running);
    const measured = await Promise.all(running.map((w) => this.runtime.stats(w.name).catch(() => undefined)));
    const samples: WorkerSample[] = [];
    const seen = new Set<string>();
    running.forEach((worker, i) => {
      const stats = measured[i];
      if (!stats) return; // stopped between the list and the measurement
      seen.add(worker.name);
      const before = this.previous.get(worker.name);
      // Another id under the same name is another worker (restarted, or handed over).
      const comparable = before && before.id === worker.id && stats.time > before.stats.time;
      const cpuPercent = comparable
        ? (Math.max(0, stats.cpuSeconds - before.stats.cpuSeconds) /
            ((stats.time - before.stats.time) / 1000)) *
          100
        : null;
      this.previous.set(worker.name, { id: worker.id, stats });
      const server = byWorker.get(worker.name);
      samples.push({
        container_name: worker.name,
        kind: server?.kind ?? worker.labels[LABELS.kind] ?? 'job',
        job_id: server?.jobId ?? null,
        server_id: server?.serverId ?? null,
        state: server?.state ?? null,
        model: server?.model ?? null,
        cpu_percent: cpuPercent === null ? null : Math.round(cpuPercent * 10) / 10,
        cpu_seconds: stats.cpuSeconds,
        memory_bytes: stats.memoryBytes,
        memory_limit_bytes: stats.memoryLimitBytes,
        sampled_at: new Date(stats.time).toISOString(),
      });
    });
    for (const name of this.previous.keys()) if (!seen.has(name)) this.previous.delete(name);
    return samples.sort((a, b) => a.container_name.localeCompare(b.container_name));
  }
}
