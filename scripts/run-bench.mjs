#!/usr/bin/env node
// Runs the benchmarks one after the other (they would disturb each other in parallel):
// `npm run bench` runs all, `npm run bench -- lifecycle routing` a selection. Each writes
// bench/results/<name>.json and prints a Markdown summary; then BENCHMARKS.md's tables are
// written from those files (npm run bench:report).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

const wanted = process.argv.slice(2);
const benches = readdirSync('bench')
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();
// The benchmarks run the router as `npm start` does: compiled. A failed build would leave
// a stale dist/ for the benches that spawn it while others run the source, so stop here.
const build = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error(
    `npm run build failed (${build.error?.message ?? `exit ${build.status ?? build.signal}`}): no benchmark run`,
  );
  process.exit(1);
}
let failed = 0;
for (const bench of benches) {
  console.log(`\n## ${bench}\n`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', `bench/${bench}`], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
// BENCHMARKS.md's tables are generated from the result files just written (bench/report.ts).
if (existsSync('bench/report.ts')) {
  console.log('\n## BENCHMARKS.md\n');
  const report = spawnSync(process.execPath, ['--import', 'tsx', 'bench/report.ts'], { stdio: 'inherit' });
  if (report.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
