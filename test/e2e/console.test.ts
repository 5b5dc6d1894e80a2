/**
 * The web console in a real browser (chromium through playwright-core) against a real
 * router with real Docker workers: the page loads without console errors, a job created
 * from the form (by keyboard) turns ready without a reload, and unload / terminate from
 * the buttons show up live. Screenshots go to test-output/console/ for people to look at.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { Agent, request } from 'undici';
import { buildConsole, launchBrowser, TEST_OUTPUT_DIR } from '../helpers/browser.js';
import { startTestRouter, type TestRouter } from '../helpers/router.js';

const SHOTS = path.join(TEST_OUTPUT_DIR, 'console');

describe('web console in a real browser', () => {
  let t: TestRouter;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    // The console the router serves is the built one.
    buildConsole();
    await mkdir(SHOTS, { recursive: true });
    t = await startTestRouter();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('console', (message) => {
      // Chromium cancels requests in flight and logs ERR_NETWORK_CHANGED whenever the
      // host's interfaces change — which they do while other tests start containers and
      // Pods (veth pairs). That is the browser's notice, not the console's fault; the
      // console retries, and each test below waits for the live page to show the change.
      if (message.type() === 'error' && !message.text().includes('net::ERR_NETWORK_CHANGED')) {
        problems.push(`console: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => problems.push(`page: ${error.message}`));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
    });
  });
  after(async () => {
    await browser?.close();
    await t?.cleanup();
  });

  it('loads live with no console errors', async () => {
    await page.goto(`${t.url}/ui`);
    await page.getByRole('status').filter({ hasText: 'live' }).waitFor();
    await page.getByText('No live servers').waitFor();
    // The catalog fills the form's choices.
    await page.locator('#model option', { hasText: 'm-131' }).waitFor({ state: 'attached' });
    assert.deepEqual(problems, []);
  });

  it('a job created from the form (by keyboard) turns ready without a reload', async () => {
    await page.getByLabel('Job id').focus();
    await page.keyboard.type('w1');
    await page.getByLabel('Model').selectOption('m-131');
    await page.getByLabel('Dataset').selectOption('ds-550');
    await page.getByLabel('Job id').focus();
    await page.keyboard.press('Enter'); // submits the form: Create
    const state = page.getByTestId('state-w1');
    await state.filter({ hasText: /^ready$/ }).waitFor({ timeout: 60_000 });
    // The operation and its chart arrived through the same live stream.
    await page.locator('li[data-operation="DEPLOY_CREATE"][data-job="w1"]').waitFor();
    await page.locator('figure[aria-label="the steps of recent operations"] svg').waitFor();
    // Worker memory, in the table and the chart (rendered by the router with Vega-Lite).
    await page.locator('tr[data-job="w1"] td', { hasText: /^\d+ MiB$/ }).waitFor();
    await page.locator('figure[aria-label="memory of each worker"] svg', { hasText: 'w1' }).waitFor();
    // Drawn at its own size in its card, not shrunk to unreadable text.
    const memoryChart = await page.$eval('figure[aria-label="memory of each worker"]', (figure) => ({
      card: figure.clientWidth,
      chart: Number(figure.querySelector('svg')!.getAttribute('width')),
      text: figure.querySelector('svg text')!.getBoundingClientRect().height,
    }));
    assert.ok(
      memoryChart.chart <= memoryChart.card,
      `chart ${memoryChart.chart} px in a ${memoryChart.card} px card`,
    );
    assert.ok(memoryChart.text >= 10, `its text is ${memoryChart.text} px high`);
    await page.screenshot({ path: path.join(SHOTS, 'ready.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it("the log tail shows the worker's output", async () => {
    await page.getByRole('button', { name: 'logs of w1' }).click();
    await page.getByTestId('log').filter({ hasText: 'worker listening' }).waitFor({ timeout: 20_000 });
  });

  it('unload and terminate from the buttons show up live', async () => {
    await page.getByRole('button', { name: 'unload w1' }).click();
    await page
      .getByTestId('state-w1')
      .filter({ hasText: /^unloaded$/ })
      .waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(SHOTS, 'unloaded.png'), fullPage: true });
    // The same change, seen by another client: the router's records say so too.
    const servers = (await (await fetch(`${t.url}/v1/servers?job_id=w1`)).json()) as {
      servers: { state: string }[];
    };
    assert.equal(servers.servers[0]!.state, 'unloaded');

    await page.getByRole('button', { name: 'terminate w1' }).click();
    await page.getByTestId('state-w1').waitFor({ state: 'detached', timeout: 30_000 });
    await page.locator('li[data-operation="TERMINATE"][data-job="w1"]').waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'terminated.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });

  it('a change made elsewhere (the API) appears without a reload', async () => {
    const created = await fetch(`${t.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ job_id: 'w2', model: 'm-131', dataset: 'ds-550' }),
    });
    assert.equal(created.status, 201);
    await page
      .getByTestId('state-w2')
      .filter({ hasText: /^ready$/ })
      .waitFor({ timeout: 30_000 });
    await page.getByLabel('Job', { exact: true }).selectOption('w2');
    await page.getByTestId('log').filter({ hasText: 'worker listening' }).waitFor({ timeout: 20_000 });
    await page
      .locator('figure[aria-label="the steps of recent operations"] svg', { hasText: 'w2' })
      .waitFor();
    await page.locator('figure[aria-label="memory of each worker"] svg', { hasText: 'w2' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, 'console.png'), fullPage: true });
    assert.deepEqual(problems, []);
  });
  it('connects again when the event stream breaks, and shows what changed meanwhile', async () => {
    const before = problems.length;
    // Every connection the router holds is cut, the console's event stream with them, as a
    // router restart or a proxy's idle timeout would; the job is created right after, so
    // its events go out while the console is away.
    t.router.app.server.closeAllConnections();
    // On a connection of its own: the test's kept-alive ones were cut too.
    const created = await request(`${t.url}/v1/jobs`, {
      method: 'POST',
      dispatcher: new Agent(),
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ job_id: 'w3', model: 'm-131', dataset: 'ds-550' }),
    });
    await created.body.dump();
    assert.equal(created.statusCode, 201);
    await page
      .getByTestId('state-w3')
      .filter({ hasText: /^ready$/ })
      .waitFor({ timeout: 30_000 });
    await page.getByRole('status').filter({ hasText: 'live' }).waitFor();
    // The cut itself may be logged by the browser (a stream ended early); nothing else is.
    const after = problems
      .slice(before)
      .filter((p) => !/^console: Failed to load resource: net::ERR_/.test(p));
    assert.deepEqual(after, []);
  });
  it('says which jobs share a worker', async () => {
    const created = await fetch(`${t.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ job_id: 'w4', model: 'm-131', dataset: 'ds-550', placement: 'shared' }),
    });
    assert.equal(created.status, 201);
    await page
      .getByTestId('state-w4')
      .filter({ hasText: /^ready$/ })
      .waitFor({ timeout: 30_000 });
    assert.match(
      (await page.getByTestId('container-w4').textContent()) ?? '',
      new RegExp(`^${t.instance}-shared-\\d{4} \\(shared\\)$`),
    );
    // A dedicated job's container is its own, and says nothing more.
    assert.doesNotMatch((await page.getByTestId('container-w2').textContent()) ?? '', /shared/);
  });
});
