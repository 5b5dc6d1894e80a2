/**
 * The guard's answer to `GET /v2/worker/stats`, the call through which a runtime without
 * a metrics API of its own (Kubernetes: the router reads no node or metrics API) measures
 * a worker: the CPU time and resident memory of the guard and everything it started —
 * the server and whatever the server runs (Triton's Python-backend stubs) — summed, as
 * the process runtime measures a foreign server's worker. A foreign server has no such
 * endpoint of its own, so the guard answers it instead of passing it on.
 */
import { processTreeUsage } from '../process-usage.js';

export const GUARD_STATS_PATH = '/v2/worker/stats';

export async function guardStats(name: string) {
  const own = process.cpuUsage();
  const usage = (await processTreeUsage(process.pid)) ?? {
    rssBytes: process.memoryUsage.rss(),
    cpuSeconds: (own.user + own.system) / 1e6,
  };
  return {
    name,
    rss_bytes: usage.rssBytes,
    memory_bytes: usage.rssBytes,
    memory_source: 'rss' as const,
    cpu_seconds: usage.cpuSeconds,
  };
}
