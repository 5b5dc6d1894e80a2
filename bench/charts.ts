/**
 * Redraws the benchmark charts from the results already in bench/results/*.json, without
 * running any benchmark (after a change to the charts, or to a JSON file by hand).
 *
 *   node --import tsx bench/charts.ts      (npm run bench:charts)
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CHARTS_BY_RESULT, writeCharts } from './lib/bench-charts.js';
import { RESULTS_DIR } from './lib/stats.js';

let failed = 0;
for (const [name, build] of Object.entries(CHARTS_BY_RESULT)) {
  const file = path.join(RESULTS_DIR, `${name}.json`);
  if (!existsSync(file)) {
    console.log(`${name}: no results yet (${path.relative(process.cwd(), file)}), skipped`);
    continue;
  }
  try {
    const written = await writeCharts(build(JSON.parse(readFileSync(file, 'utf8'))));
    console.log(`${name}: ${written.map((f) => path.relative(process.cwd(), f)).join(', ')}`);
  } catch (error) {
    // One result in an unexpected shape should not keep the others from being drawn.
    failed++;
    console.error(`${name}: ${error instanceof Error ? error.stack : String(error)}`);
  }
}
process.exit(failed ? 1 : 0);
