/** The web console's size budget: everything the browser downloads, gzipped, at most 200 KB. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { REPO_ROOT } from '../helpers/paths.js';

const BUDGET_BYTES = 200 * 1000;

describe('console bundle', () => {
  it('builds without a network and fits 200 KB gzipped', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'modeldock-console-'));
    try {
      const built = spawnSync(process.execPath, ['scripts/build-console.mjs', out], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
      });
      assert.equal(built.status, 0, built.stderr);
      const files = await readdir(out);
      assert.deepEqual(files.sort(), ['app.css', 'app.js', 'index.html']);
      let total = 0;
      for (const file of files) total += gzipSync(await readFile(path.join(out, file)), { level: 9 }).length;
      assert.ok(total <= BUDGET_BYTES, `${total} bytes gzipped > ${BUDGET_BYTES}`);
      // Everything is served by the router: no absolute URL to fetch a script or style from.
      const html = await readFile(path.join(out, 'index.html'), 'utf8');
      assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
