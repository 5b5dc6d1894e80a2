/**
 * The web console against a router that asks for keys, in a real browser (chromium
 * through playwright-core) with real Docker workers: the page loads without a key and
 * asks for one; an infer-scope key and a wrong key are refused with a message that says
 * which; an admin key connects, the live stream carries it (a job created elsewhere
 * appears), it survives a reload of the tab, and "Forget API key" asks again.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { buildConsole, launchBrowser, TEST_OUTPUT_DIR } from '../helpers/browser.js';
import { startTestRouter, type TestRouter } from '../helpers/router.js';

const SHOTS = path.join(TEST_OUTPUT_DIR, 'console');
const ADMIN_KEY = 'console-admin-key-0123456789abcdef';
const INFER_KEY = 'console-infer-key-0123456789abcdef';

describe('web console with API keys in a real browser', () => {
  let t: TestRouter;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  const pageErrors: string[] = [];
  /** Every API answer the page got, to check which were refused and why. */
  const answers: { status: number; path: string; authorization: string | undefined }[] = [];

  before(async () => {
    // The console the router serves is the built one.
    buildConsole();
    await mkdir(SHOTS, { recursive: true });
    t = await startTestRouter({ keys: { admin: ADMIN_KEY, infer: INFER_KEY } });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('response', (response) => {
      const url = new URL(response.url());
      answers.push({
        status: response.status(),
        path: url.pathname,
        authorization: response.request().headers()['authorization'],
      });
    });
  });
  after(async () => {
    await browser?.close();
    await t?.cleanup();
  });

  const enterKey = async (key: string) => {
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Connect' }).click();
  };

  it('loads without a key and asks for one', async () => {
    await page.goto(`${t.url}/ui`);
    await page.getByRole('alert').filter({ hasText: 'This router asks for an API key.' }).waitFor();
    // The page itself is open; only the API asked for a key.
    assert.ok(answers.some((a) => a.path === '/ui/app.js' && a.status === 200));
    assert.ok(answers.some((a) => a.path.startsWith('/v1/') && a.status === 401));
    assert.ok(answers.every((a) => a.status < 400 || a.path.startsWith('/v1/')));
    await page.screenshot({ path: path.join(SHOTS, 'key-prompt.png'), fullPage: true });
  });

  it('refuses an infer-scope key, saying the console needs an admin key', async () => {
    await enterKey(INFER_KEY);
    await page.getByRole('alert').filter({ hasText: 'needs an admin key' }).waitFor();
    assert.ok(answers.some((a) => a.status === 403 && a.authorization === `Bearer ${INFER_KEY}`));
    // Forgotten: the prompt is empty again.
    assert.equal(await page.getByLabel('API key').inputValue(), '');
  });

  it('refuses a wrong key', async () => {
    await enterKey('not-a-key-of-this-router');
    await page.getByRole('alert').filter({ hasText: 'The router refused that key.' }).waitFor();
  });

  it('connects with the admin key and shows a job created elsewhere, live', async () => {
    await enterKey(ADMIN_KEY);
    await page.getByRole('status').filter({ hasText: 'live' }).waitFor();
    await page.getByText('No live servers').waitFor();
    const created = await fetch(`${t.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
      body: JSON.stringify({ job_id: 'k1', model: 'm-131', dataset: 'ds-550' }),
    });
    assert.equal(created.status, 201);
    await page
      .getByTestId('state-k1')
      .filter({ hasText: /^ready$/ })
      .waitFor({ timeout: 60_000 });
    // The event stream is how it arrived, and it carried the key.
    assert.ok(
      answers.some(
        (a) => a.path === '/v1/events' && a.status === 200 && a.authorization === `Bearer ${ADMIN_KEY}`,
      ),
    );
    assert.deepEqual(pageErrors, []);
  });

  it('keeps the key across a reload of the tab, and forgets it on request', async () => {
    await page.reload();
    await page
      .getByTestId('state-k1')
      .filter({ hasText: /^ready$/ })
      .waitFor();
    await page.getByRole('button', { name: 'Forget API key' }).click();
    await page.getByRole('alert').filter({ hasText: 'This router asks for an API key.' }).waitFor();
    await page.reload();
    await page.getByLabel('API key').waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
