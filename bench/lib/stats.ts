/** Small statistics and reporting helpers shared by the benchmarks. */
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

export function machine() {
  return {
    cpus: os.cpus().length,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(os.totalmem() / 1024 ** 3),
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString(),
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

/** One operation measured against its floor (lifecycle and Kubernetes benches). */
export interface FloorComparison {
  operation: string;
  floor: Summary;
  modeldock: Summary;
}

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
 * The two tables the floor benches print: each operation against its floor, then the
 * warm pool's DEPLOY_CREATE and TEMP against the same floor. `floorName` says whose
 * floor it is (the engine's, the cluster's).
 */
export function floorTables(
  floorName: string,
  operations: FloorComparison[],
  warmPool: Partial<Record<'DEPLOY_CREATE' | 'TEMP', { modeldock: Summary }>>,
  floor: Record<'DEPLOY_CREATE' | 'TEMP', number[]>,
): string {
  const byOperation = table(
    ['operation', `${floorName} floor (median, IQR)`, 'modeldock (median, IQR)', 'ratio'],
    operations.map((o) => [
      o.operation,
      `${ms(o.floor.median)} ± ${ms(o.floor.iqr)}`,
      `${ms(o.modeldock.median)} ± ${ms(o.modeldock.iqr)}`,
      ratio(o.modeldock.median, o.floor.median),
    ]),
  );
  const pooled = table(
    ['with a warm pool', `${floorName} floor`, 'modeldock + pool', 'ratio'],
    (['DEPLOY_CREATE', 'TEMP'] as const).map((op) => [
      op,
      ms(summarize(floor[op]).median),
      `${ms(warmPool[op]!.modeldock.median)} ± ${ms(warmPool[op]!.modeldock.iqr)}`,
      ratio(warmPool[op]!.modeldock.median, summarize(floor[op]).median),
    ]),
  );
  return `${byOperation}\n\n${pooled}`;
}
