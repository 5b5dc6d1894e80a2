/** Small statistics and reporting helpers shared by the benchmarks. */
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Summary {
  n: number;
  median: number;
  p99: number;
  min: number;
  max: number;
  /** Interquartile range: the spread of the middle half. */
  iqr: number;
  /** First and third quartile: where the middle half lies (the IQR is q3 - q1). */
  q1: number;
  q3: number;
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    n: sorted.length,
    median: round(quantile(sorted, 0.5)),
    p99: round(quantile(sorted, 0.99)),
    min: round(sorted[0] ?? NaN),
    max: round(sorted.at(-1) ?? NaN),
    iqr: round(quantile(sorted, 0.75) - quantile(sorted, 0.25)),
    q1: round(quantile(sorted, 0.25)),
    q3: round(quantile(sorted, 0.75)),
  };
}

/** The commit the benchmark ran, and whether the checkout had changes on top of it. */
function currentCommit(): { sha: string; dirty: boolean } | null {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, {
        cwd: import.meta.dirname,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    return {
      sha: git('rev-parse', 'HEAD').trim(),
      // Results and the report are what benchmarks write, not code they run: a bench after
      // another in one `npm run bench` would otherwise always read "changed".
      dirty:
        git(
          'status',
          '--porcelain',
          '--untracked-files=no',
          '--',
          ':(top)',
          ':(top,exclude)bench/results',
          ':(top,exclude)BENCHMARKS.md',
        ).trim() !== '',
    };
  } catch {
    return null; // not a git checkout: the report says "commit not recorded"
  }
}

// Both taken when the benchmark starts (every bench imports this module first thing): the
// load it starts under, and the code it runs (edits made while it runs are not in it).
/** The load average (1, 5, 15 min) when the benchmark started. */
const LOAD_AT_START = os.loadavg().map((v) => Math.round(v * 100) / 100);
const COMMIT_AT_START = currentCommit();

/**
 * Where and when a result was measured, kept in every result file (`machine`) and quoted
 * above every table BENCHMARKS.md generates from it (bench/report.ts): the machine, the
 * date, the commit, and how busy the machine was (load average at the start and the end
 * of the benchmark; the machine is often shared).
 */
export function machine() {
  return {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString(),
    commit: COMMIT_AT_START,
    load_average: { at_start: LOAD_AT_START, at_end: os.loadavg().map((v) => Math.round(v * 100) / 100) },
  };
}

/** Where every benchmark keeps its raw results (JSON) and charts (SVG). */
export const RESULTS_DIR = path.resolve(import.meta.dirname, '..', 'results');

/** Writes bench/results/<fileName>; returns the file's path. */
export function writeResultFile(fileName: string, text: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, fileName);
  writeFileSync(file, text);
  return file;
}

export function writeResult(name: string, result: unknown): string {
  return writeResultFile(`${name}.json`, JSON.stringify(result, null, 2) + '\n');
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 1)} ms`;
export const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

/**
 * What the floor benches record of their samples: each operation against its floor,
 * and the warm pool's DEPLOY_CREATE and TEMP against the same floor.
 */
export function floorComparisons<Op extends string>(
  ops: readonly Op[],
  floor: Record<Op | 'DEPLOY_CREATE' | 'TEMP', number[]>,
  modeldock: Record<Op, number[]>,
  pool: Record<'DEPLOY_CREATE' | 'TEMP', number[]>,
) {
  return {
    operations: ops.map((op) => ({
      operation: op,
      floor: summarize(floor[op]),
      modeldock: summarize(modeldock[op]),
      ratio: summarize(modeldock[op]).median / summarize(floor[op]).median,
    })),
    warm_pool: Object.fromEntries(
      (['DEPLOY_CREATE', 'TEMP'] as const).map((op) => [
        op,
        {
          modeldock: summarize(pool[op]),
          ratio_to_floor: summarize(pool[op]).median / summarize(floor[op]).median,
        },
      ]),
    ) as Record<'DEPLOY_CREATE' | 'TEMP', { modeldock: Summary; ratio_to_floor: number }>,
  };
}

/**
 * Both sides of one trial, the floor first in even trials and the other side first in odd
 * ones: whatever the first leaves behind (an engine tearing down, a page cache warmed)
 * falls on both alike.
 */
export async function inAlternatingOrder(
  trial: number,
  floor: () => Promise<void>,
  other: () => Promise<void>,
): Promise<void> {
  const [first, second] = trial % 2 === 0 ? [floor, other] : [other, floor];
  await first();
  await second();
}
