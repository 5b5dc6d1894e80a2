/**
 * `npm run bench` (scripts/run-bench.mjs) builds first, because some benches spawn the
 * compiled router while others run the source: after a failed build it must stop, not
 * measure a stale dist/ beside fresh source. Run for real in a scratch project whose
 * build script fails or succeeds and whose one bench leaves a mark when it runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/paths.js';

const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A project with run-bench's layout: package.json with `build`, bench/probe.bench.ts. */
function scratchProject(buildScript: string): { dir: string; mark: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'modeldock-run-bench-'));
  scratchDirs.push(dir);
  const mark = path.join(dir, 'bench-ran');
  writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'scratch', private: true, type: 'module', scripts: { build: buildScript } }),
  );
  mkdirSync(path.join(dir, 'bench'));
  writeFileSync(
    path.join(dir, 'bench', 'probe.bench.ts'),
    `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(mark)}, 'ran');\n`,
  );
  // tsx, which run-bench loads the benches with, from this checkout.
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return { dir, mark };
}

function runBench(dir: string) {
  return spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'run-bench.mjs')], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('npm run bench', { timeout: 120_000 }, () => {
  it('stops with a failure and runs no benchmark when the build fails', () => {
    const { dir, mark } = scratchProject('echo "type error" >&2; exit 2');
    const run = runBench(dir);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /npm run build failed .*no benchmark run/);
    assert.equal(existsSync(mark), false, 'a benchmark ran after the failed build');
  });

  it('runs the benchmarks after a successful build', () => {
    const { dir, mark } = scratchProject('exit 0');
    const run = runBench(dir);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(existsSync(mark), true, 'the benchmark did not run');
  });
});
