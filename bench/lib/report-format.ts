/** How the generated tables of BENCHMARKS.md write their figures (bench/lib/report-tables.ts). */
export { table } from './stats.js';

export const fixed = (v: number, digits: number) => v.toFixed(digits);
export const int = (v: number) => String(Math.round(v));
/** Milliseconds with three significant figures or so: 0.24 ms, 23.6 ms, 1016 ms. */
export const ms = (v: number) => `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)} ms`;
export const us = (v: number, digits = 0) => `${v.toFixed(digits)} µs`;
export const times = (v: number) => `${v.toFixed(2)}×`;
/** A summary's median with its interquartile range. */
export const summarizedMs = (s: { median: number; iqr: number }) => `${ms(s.median)} ± ${ms(s.iqr)}`;

/** The value at a dotted path of a result, or an error naming the path (a result of another shape). */
export function need(value: any, path: string): any {
  let current = value;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object' || !(key in current))
      throw new TypeError(`the result has no ${path}`);
    current = current[key];
  }
  return current;
}
