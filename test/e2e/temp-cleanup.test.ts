/**
 * A TEMP that fails answers with its own failure even when removing its server fails
 * too: the removal's error is kept beside it as a warning (and the reconciler removes the
 * server later), never in its place. The engine refusing the removal is injected into a
 * real Docker runtime; everything else is real.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

/** A Docker runtime whose removals fail while `refuse` is set, as an engine in trouble would. */
class RefusingRemovals extends DockerRuntime {
  refuse = false;
  override async remove(name: string, signal?: AbortSignal): Promise<void> {
    if (this.refuse) throw new Error(`the engine refused to remove ${name}`);
    return super.remove(name, signal);
  }
}

describe('TEMP: a failed removal never hides the failure', { timeout: 180_000 }, () => {
  let t: TestRouter;
  let runtime: RefusingRemovals;
  before(async () => {
    t = await startTestRouter({
      runtime: (config) =>
        (runtime = new RefusingRemovals({
          docker: new Dockerode(),
          instance: config.instance,
          image: config.workerImage,
          modelsDir: config.modelsDir,
          datasetsDir: config.datasetsDir,
        })),
    });
  });
  after(async () => {
    if (runtime) runtime.refuse = false;
    await t?.cleanup();
  });

  it("answers the inference's own error and records the removal's as a warning", async () => {
    runtime.refuse = true;
    // Inputs m-131 cannot take: the worker refuses them (400).
    const answer = await postJson(`${t.url}/v1/temp`, {
      job_id: 'tc1',
      model: 'm-131',
      dataset: 'ds-550',
      inputs: [{ name: 'pixels', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }],
    });
    runtime.refuse = false;
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.doesNotMatch(JSON.stringify(answer.body), /refused to remove/);
    const operations = (await getJson(`${t.url}/v1/operations?job_id=tc1&type=TEMP`)).body.operations;
    assert.equal(operations.length, 1);
    assert.equal(operations[0].status, 'failed');
    assert.match(operations[0].warnings.join('\n'), /could not be removed: the engine refused to remove/);

    // And when the inference succeeds, a removal that fails is the TEMP's failure: it is not hidden either.
    runtime.refuse = true;
    const succeeded = await postJson(`${t.url}/v1/temp`, {
      job_id: 'tc2',
      model: 'm-131',
      dataset: 'ds-550',
    });
    runtime.refuse = false;
    assert.ok(succeeded.status >= 500, JSON.stringify(succeeded.body));
    assert.match(JSON.stringify(succeeded.body), /refused to remove/);
  });
});
