/**
 * A real browser for the console tests: Debian's chromium (installed by .ci/run, never
 * downloaded), driven by playwright-core, with a fresh profile each time. Fails (never
 * skips) with the fix when chromium is missing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { REPO_ROOT } from './paths.js';

export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots and other files for people to look at; git-ignored. */
export const TEST_OUTPUT_DIR = path.join(REPO_ROOT, 'test-output');

/** Build the console the router serves (dist/console), as `npm run build` does. */
export function buildConsole(): void {
  const built = spawnSync(process.execPath, ['scripts/build-console.mjs'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  assert.equal(built.status, 0, built.stderr);
}

export async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
  }
  const profile = await mkdtemp(path.join(os.tmpdir(), 'modeldock-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
