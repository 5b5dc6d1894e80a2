/**
 * Writes BENCHMARKS.md's tables and quoted figures from the result files in
 * bench/results/ (see bench/lib/report.ts for the markers), or with `--check` only says
 * whether the document still matches them (exit 1 if not).
 *
 *   node --import tsx bench/report.ts [--check]      (npm run bench:report)
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { renderDocument } from './lib/report.js';
import { RESULTS_DIR } from './lib/stats.js';

const DOCUMENT = path.resolve(import.meta.dirname, '..', 'BENCHMARKS.md');
const check = process.argv.includes('--check');

const before = readFileSync(DOCUMENT, 'utf8');
const { text, quoted, problems } = renderDocument(before, (file) =>
  JSON.parse(readFileSync(path.join(RESULTS_DIR, file), 'utf8')),
);
for (const problem of problems) console.error(`BENCHMARKS.md: ${problem}`);
const unquoted = readdirSync(RESULTS_DIR).filter((f) => f.endsWith('.json') && !quoted.has(f));
if (unquoted.length) console.log(`not quoted in BENCHMARKS.md yet: ${unquoted.join(', ')}`);

if (check) {
  if (text !== before) console.error('BENCHMARKS.md differs from bench/results/: run `npm run bench:report`');
  process.exit(problems.length || text !== before ? 1 : 0);
}
if (text !== before) writeFileSync(DOCUMENT, text);
console.log(
  `BENCHMARKS.md ${text === before ? 'already matches' : 'written from'} ${quoted.size} result files`,
);
process.exit(problems.length ? 1 : 0);
