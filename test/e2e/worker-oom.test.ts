/**
 * A worker that runs out of memory is noticed and its server marked with the reason:
 * a 256 MiB model loaded into a worker limited to 160 MiB is OOM-killed by the kernel.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ensureBigModel, TEST_MODELS_DIR } from '../helpers/models.js';
import { DATASETS_DIR } from '../helpers/paths.js';
import { getJson, postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';

describe('worker killed for running out of memory', () => {
  let t: TestRouter;
  let model: string;
  before(async () => {
    model = await ensureBigModel(256);
    t = await startTestRouter({
      env: {
        MODELDOCK_MODELS_DIR: TEST_MODELS_DIR,
        MODELDOCK_DATASETS_DIR: DATASETS_DIR,
        MODELDOCK_WORKER_MEMORY: '160m',
      },
    });
  });
  after(async () => {
    await t?.cleanup();
  });

  it('fails the load and marks the server with OOM as the reason', async () => {
    const response = await postJson(`${t.url}/v1/jobs`, { job_id: 'oom1', model, dataset: 'ds-550' });
    assert.ok(response.status >= 500, JSON.stringify(response.body));
    // The error names the operation; its record names the server.
    const operation = await getJson(`${t.url}/v1/operations/${response.body.error.operation_id}`);
    assert.equal(operation.body.status, 'failed');
    const serverId = operation.body.server_id as string;
    const failed = await waitForServer(
      t.router,
      serverId,
      (s) => s.state === 'failed' && /OOM/.test(s.reason ?? ''),
      5_000,
    );
    assert.match(failed.reason!, /out of memory/);
  });
});
