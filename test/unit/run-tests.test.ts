/**
 * `npm test` (scripts/run-tests.mjs) fails a run in which a test was skipped or left
 * todo, naming it, and passes one in which every test ran: in CI a test that did not run
 * is not a pass.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/paths.js';

const RUN_TESTS = path.join(REPO_ROOT, 'scripts', 'run-tests.mjs');

describe('scripts/run-tests.mjs', () => {
  let dir: string;
  before(async () => {
    // Inside the checkout, so the fixtures' `--import tsx` finds node_modules.
    await mkdir(path.join(REPO_ROOT, '.cache'), { recursive: true });
    dir = await mkdtemp(path.join(REPO_ROOT, '.cache', 'run-tests-'));
    await mkdir(path.join(dir, 'test'));
    await writeFile(
      path.join(dir, 'test', 'ran.test.ts'),
      "import { it } from 'node:test';\nit('runs', () => {});\n",
    );
    await writeFile(
      path.join(dir, 'test', 'skipped.test.ts'),
      "import { it } from 'node:test';\nit('runs', () => {});\nit.skip('was skipped', () => {});\nit('has a todo', { todo: 'later' }, () => {});\n",
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = (filter: string) => {
    // Without this test's own runner context, which would make the child's runner stand down.
    const { NODE_TEST_CONTEXT: _ignored, ...env } = process.env;
    return spawnSync(process.execPath, [RUN_TESTS, filter], {
      cwd: dir,
      env,
      encoding: 'utf8',
      timeout: 120_000,
    });
  };

  it('passes a run in which every test ran', () => {
    const result = run('ran.test');
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  it('fails a run with a skipped or todo test and names each', () => {
    const result = run('skipped.test');
    assert.equal(result.status, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /2 test\(s\) did not run/);
    assert.match(result.stderr, /skip was skipped \(test\/skipped\.test\.ts\)/);
    assert.match(result.stderr, /todo has a todo \(test\/skipped\.test\.ts\): later/);
  });
});
