/**
 * The serving-runtime catalog through the router: a model whose format no serving
 * runtime serves is refused at DEPLOY_CREATE (and TEMP) with a 400 naming the formats
 * that are served, and nothing is created; an ONNX model still goes to modeldock's worker.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MODELS_DIR } from '../helpers/paths.js';
import { getJson, postJson, type TestRouter } from '../helpers/router.js';
import { startScratchRouter, type ScratchRouter } from '../helpers/scratch-router.js';

describe('serving runtimes: matching a model to a server', { timeout: 180_000 }, () => {
  let scratch: ScratchRouter;
  let t: TestRouter;

  before(async () => {
    scratch = await startScratchRouter('srt', async ({ modelsDir }) => {
      await cp(path.join(MODELS_DIR, 'm-131'), path.join(modelsDir, 'm-131'), { recursive: true });
      await mkdir(path.join(modelsDir, 'm-caffe'));
      await writeFile(path.join(modelsDir, 'm-caffe', 'model.json'), JSON.stringify({ format: 'caffe' }));
      await mkdir(path.join(modelsDir, 'm-pinned'));
      await writeFile(
        path.join(modelsDir, 'm-pinned', 'model.json'),
        JSON.stringify({ runtime: 'nonesuch' }),
      );
    });
    t = scratch.t;
  });
  after(async () => {
    await scratch?.cleanup();
  });

  const request = (model: string, operation_type = 'DEPLOY_CREATE') => ({
    job_id: `j-${model}`,
    model,
    dataset: 'ds-550',
    operation_type,
  });

  it('DEPLOY_CREATE and TEMP of a format nobody serves → 400 naming the served formats', async () => {
    for (const operation of ['DEPLOY_CREATE', 'TEMP']) {
      const response = await postJson(`${t.url}/inference_router/`, request('m-caffe', operation));
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.equal(response.body.error.code, 'invalid_input');
      assert.match(
        response.body.error.message,
        /no serving runtime serves model m-caffe of format "caffe"; formats served here: (\w+, )*onnx\b/,
      );
    }
  });

  it('a model naming a runtime the catalog lacks → 400 listing the catalog', async () => {
    const response = await postJson(`${t.url}/inference_router/`, request('m-pinned'));
    assert.equal(response.status, 400, JSON.stringify(response.body));
    assert.match(
      response.body.error.message,
      /"nonesuch", which is not in the catalog \(modeldock-onnx, triton, mlserver\)/,
    );
  });

  it('the refusals created no job, no operation and no worker', async () => {
    assert.deepEqual((await getJson(`${t.url}/v1/jobs`)).body.jobs, []);
    assert.deepEqual((await getJson(`${t.url}/v1/operations`)).body.operations, []);
    assert.deepEqual(await t.runtime.list(), []);
  });

  it('an ONNX model (model.onnx, no format in model.json) is served by modeldock’s worker', async () => {
    const response = await postJson(`${t.url}/inference_router/`, request('m-131'));
    assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 400));
    assert.equal(response.body.state, 'ready');
    const terminated = await postJson(`${t.url}/inference_router/`, request('m-131', 'TERMINATE'));
    assert.equal(terminated.status, 200);
  });
});
