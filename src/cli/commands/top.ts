/**
 * `modeldock top`: every worker's CPU and memory, redrawn in place every interval (on a
 * terminal; elsewhere, or with --json, one sample per interval is printed after another).
 */
import { bytes, renderTable, type Output } from '../client/output.js';
import type { WorkerSampleView } from '../client/wire.js';
import type { CommandContext } from './context.js';

export function topTable(out: Output, workers: WorkerSampleView[]): string {
  const totalMemory = workers.reduce((sum, w) => sum + w.memory_bytes, 0);
  const totalCpu = workers.reduce((sum, w) => sum + (w.cpu_percent ?? 0), 0);
  const rows = workers.map((w) => [
    w.container_name,
    w.job_id ?? (w.kind === 'pool' ? out.c.dim('(warm pool)') : '-'),
    out.state(w.state),
    w.model ?? '-',
    w.cpu_percent === null ? '…' : `${w.cpu_percent.toFixed(1)} %`,
    bytes(w.memory_bytes),
    w.memory_limit_bytes
      ? `${((w.memory_bytes / w.memory_limit_bytes) * 100).toFixed(1)} % of ${bytes(w.memory_limit_bytes)}`
      : '-',
  ]);
  const head = ['CONTAINER', 'JOB', 'STATE', 'MODEL', 'CPU', 'MEMORY', 'OF LIMIT'].map((h) => out.c.bold(h));
  const summary = `${workers.length} worker${workers.length === 1 ? '' : 's'}, CPU ${totalCpu.toFixed(1)} %, memory ${bytes(totalMemory)}`;
  return `${summary}\n\n${renderTable(head, rows)}`;
}

export async function top(
  { api, out, signal }: CommandContext,
  options: { intervalMs: number; once: boolean },
  screen: NodeJS.WriteStream = process.stdout,
): Promise<void> {
  const inPlace = screen.isTTY === true && !out.json;
  // The first sample has no CPU share yet (it takes two): take it, wait a moment, then show.
  for (let first = true; !signal.aborted; first = false) {
    const { workers } = await api.get<{ workers: WorkerSampleView[] }>('/v1/stats', signal);
    if (!first) {
      if (out.json) out.record({ time: new Date().toISOString(), workers });
      else if (inPlace) screen.write(`\x1b[H\x1b[2J${topTable(out, workers)}\n`);
      else out.line(`${topTable(out, workers)}\n`);
      if (options.once) return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, first ? Math.min(1000, options.intervalMs) : options.intervalMs);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
}
