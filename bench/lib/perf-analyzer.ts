/**
 * One run of NVIDIA's perf_analyzer (installed by scripts/perf-analyzer.sh) at one
 * concurrency, read back from its CSV: what bench/perf-analyzer.bench.ts and
 * bench/batching.bench.ts measure with it. perf_analyzer reads the model's configuration
 * (max_batch_size, dims) to shape its requests: one sample each here.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PaRow {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  server_queue_us: number;
  server_compute_infer_us: number;
}

/** undefined: perf_analyzer found no stable measurement windows. */
export async function perfAnalyzer(
  binary: string,
  target: { url: string; protocol: 'http' | 'grpc'; headers?: string[]; model: string },
  concurrency: number,
  csv: string,
  intervalMs: number,
): Promise<PaRow | undefined> {
  try {
    await run(
      binary,
      [
        '-m',
        target.model,
        '-u',
        target.url,
        '-i',
        target.protocol,
        '--concurrency-range',
        String(concurrency),
        '--measurement-interval',
        String(intervalMs),
        // This shared machine's noise needs a looser stability rule than the 10 % default
        // (a run that still finds no stable windows is counted as unstable, not measured).
        '--stability-percentage',
        '100',
        '--max-trials',
        '10',
        '-f',
        csv,
        ...(target.headers ?? []).flatMap((header) => ['-H', header]),
      ],
      { timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (error) {
    if (/Failed to obtain stable measurement/.test(String((error as { stderr?: string }).stderr)))
      return undefined;
    throw error;
  }
  const [header, row] = (await readFile(csv, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const value = (name: string) => Number(row![header!.indexOf(name)]);
  return {
    rps: value('Inferences/Second'),
    p50_ms: value('p50 latency') / 1000,
    p99_ms: value('p99 latency') / 1000,
    server_queue_us: value('Server Queue'),
    server_compute_infer_us: value('Server Compute Infer'),
  };
}
