#!/usr/bin/env node
// Runs the test suite with Node's own test runner. Node 20 cannot glob TypeScript
// test files itself, so this lists them: `npm test` runs all, `npm test -- unit` (or
// contract, e2e, or a path fragment) runs the files whose path contains that word.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

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
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
