#!/usr/bin/env node
// Runs the test suite with Node's own test runner. Node 20 cannot glob TypeScript
// test files itself, so this lists them: `npm test` runs all, `npm test -- unit` (or
// contract, e2e, or a path fragment) runs the files whose path contains that word.
//
// Two rules on top of the runner's: a skipped or todo test fails the run (in CI a test
// that did not run is not a pass: a missing service is a failure, never a skip), and
// each test file has a time bound (MODELDOCK_TEST_FILE_TIMEOUT_MS, default 45 minutes:
// above the 20 a Kubernetes test may spend building its cluster; Node 20's
// --test-timeout bounds each file's run), so a hang fails that file instead of blocking CI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function collect(dir) {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) return collect(full);
    return full.endsWith('.test.ts') ? [full] : [];
  });
}

const filters = process.argv.slice(2);
const files = collect('test')
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const fileTimeoutMs = Number(process.env.MODELDOCK_TEST_FILE_TIMEOUT_MS ?? 45 * 60_000);
if (!Number.isInteger(fileTimeoutMs) || fileTimeoutMs <= 0) {
  console.error('MODELDOCK_TEST_FILE_TIMEOUT_MS must be a positive integer (milliseconds)');
  process.exit(1);
}
const scratch = mkdtempSync(path.join(os.tmpdir(), 'modeldock-tests-'));
const skippedFile = path.join(scratch, 'skipped.jsonl');
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    `--test-timeout=${fileTimeoutMs}`,
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${fileURLToPath(new URL('./skipped-tests-reporter.mjs', import.meta.url))}`,
    `--test-reporter-destination=${skippedFile}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
let skipped = [];
try {
  skipped = readFileSync(skippedFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
} catch {
  // No file: the runner did not get as far as reporting; its own status says so.
}
rmSync(scratch, { recursive: true, force: true });
if (skipped.length > 0) {
  console.error(`\n✖ ${skipped.length} test(s) did not run (skip/todo), which fails the run:`);
  for (const t of skipped) {
    console.error(
      `  ${t.kind} ${t.name} (${path.relative(process.cwd(), t.file ?? '')})${t.reason ? `: ${t.reason}` : ''}`,
    );
  }
  process.exit(1);
}
process.exit(result.status ?? 1);
