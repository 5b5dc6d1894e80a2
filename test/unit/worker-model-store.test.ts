/**
 * The model store and the registry of loaded models on real ONNX files: what a load
 * reads from the graph and model.json, how each broken model fails (with nothing left
 * loaded), loads shared and run side by side, and unloads that wait for the inferences
 * running on the session they release.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConflictError, InvalidInputError, NotFoundError } from '../../src/errors.js';
import { infer } from '../../src/worker/inference.js';
import { ModelRegistry } from '../../src/worker/model-registry.js';
import { ModelStore } from '../../src/worker/model-store.js';
import { DIGITS } from '../helpers/fixtures.js';
import { MODELS_DIR } from '../helpers/paths.js';

const M131 = path.join(MODELS_DIR, 'm-131', 'model.onnx');

describe('worker model store and registry', () => {
  let dir: string;
  let store: ModelStore;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-models-'));
    const model = async (id: string, onnx: string | null, json?: string) => {
      await mkdir(path.join(dir, id));
      if (onnx === null) await copyFile(M131, path.join(dir, id, 'model.onnx'));
      else await writeFile(path.join(dir, id, 'model.onnx'), onnx);
      if (json !== undefined) await writeFile(path.join(dir, id, 'model.json'), json);
    };
    await model('m-131', null, '{"labels": ["0","1","2","3","4","5","6","7","8","9"]}');
    await model('m-131-copy', null);
    await model('corrupt', 'not a protobuf at all');
    await model('empty', '');
    await model('bad-json', null, '{"labels": ');
    await model('bad-labels', null, '{"labels": [0, 1]}');
    await model('bad-output', null, '{"prediction_output": "class"}');
    await mkdir(path.join(dir, 'no-onnx'));
    // FIFOs: opening one for reading blocks until a writer comes, so a load would hang.
    await model('fifo-json', null);
    execFileSync('mkfifo', [path.join(dir, 'fifo-json', 'model.json')]);
    await mkdir(path.join(dir, 'fifo-onnx'));
    execFileSync('mkfifo', [path.join(dir, 'fifo-onnx', 'model.onnx')]);
    store = new ModelStore(dir, 1);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists the directories that hold a model.onnx', async () => {
    assert.deepEqual(await store.list(), [
      'bad-json',
      'bad-labels',
      'bad-output',
      'corrupt',
      'empty',
      'fifo-json',
      'fifo-onnx',
      'm-131',
      'm-131-copy',
    ]);
    assert.deepEqual(await new ModelStore(path.join(dir, 'absent'), 1).list(), []);
  });

  it('opens m-131: inputs and outputs from the graph, labels from model.json', async () => {
    const model = await store.open('job-1', 'm-131');
    try {
      assert.equal(model.name, 'job-1');
      assert.equal(model.modelId, 'm-131');
      assert.deepEqual(model.inputs, [{ name: 'pixels', datatype: 'FP32', shape: [-1, 64] }]);
      assert.deepEqual(
        model.outputs.map((o) => o.name),
        ['label', 'probabilities'],
      );
      assert.equal(model.manifest.labels?.[3], '3');
      assert.ok(model.bytes > 1000 && model.loadMs >= 0);
    } finally {
      await model.session.release();
    }
  });

  const broken: [string, string, new (...args: never[]) => Error, RegExp][] = [
    ['a missing model', 'm-404', NotFoundError, /not found in the model store/],
    ['a directory without model.onnx', 'no-onnx', NotFoundError, /no no-onnx\/model.onnx/],
    ['a corrupt model.onnx', 'corrupt', InvalidInputError, /cannot be loaded/],
    ['a model.onnx that is a FIFO', 'fifo-onnx', InvalidInputError, /model.onnx is not a regular file/],
    ['a model.json that is a FIFO', 'fifo-json', InvalidInputError, /model.json is not a regular file/],
    ['an empty model.onnx', 'empty', InvalidInputError, /cannot be loaded/],
    ['a model.json that is not JSON', 'bad-json', InvalidInputError, /model.json is not JSON/],
    ['labels that are not strings', 'bad-labels', InvalidInputError, /"labels" must be a list of strings/],
    [
      'a prediction_output that is no output',
      'bad-output',
      InvalidInputError,
      /"class", which is not an output/,
    ],
  ];
  for (const [what, id, kind, message] of broken) {
    it(`a load of ${what} fails clearly and leaves nothing loaded`, async () => {
      const registry = new ModelRegistry(store);
      await assert.rejects(registry.load('job', id), (error: unknown) => {
        assert.ok(error instanceof kind, String(error));
        assert.match((error as Error).message, message);
        return true;
      });
      assert.equal(registry.isLoaded('job'), false);
      assert.deepEqual(registry.names(), []);
      const [entry] = registry.entries();
      assert.equal(entry?.state, 'UNAVAILABLE');
      assert.match(entry?.reason ?? '', message);
      assert.throws(() => registry.get('job'), /failed to load/);
    });
  }

  it('concurrent loads of one name share one session; a different model meanwhile conflicts', async () => {
    const registry = new ModelRegistry(store);
    const loads = [registry.load('job', 'm-131'), registry.load('job', 'm-131')];
    assert.deepEqual(
      registry.entries().map((e) => e.state),
      ['LOADING'],
    );
    await assert.rejects(registry.load('job', 'm-131-copy'), ConflictError);
    const [a, b] = await Promise.all(loads);
    assert.equal(a!.model, b!.model, 'one session for both');
    assert.equal((await registry.load('job', 'm-131')).alreadyLoaded, true);
    await registry.close();
  });

  it('loads of different names run side by side and are served separately', async () => {
    const registry = new ModelRegistry(store);
    const [a, b] = await Promise.all([registry.load('a', 'm-131'), registry.load('b', 'm-131-copy')]);
    assert.notEqual(a.model.session, b.model.session);
    assert.deepEqual(registry.names(), ['a', 'b']);
    assert.equal(await registry.unload('a'), true);
    assert.deepEqual(registry.names(), ['b']);
    assert.equal(await registry.unload('a'), false, 'unloading what is not loaded is a no-op');
    await registry.close();
    assert.deepEqual(registry.names(), []);
  });

  it('an unload waits for the inference running on the session, then refuses new ones', async () => {
    const registry = new ModelRegistry(store);
    await registry.load('job', 'm-131');
    const rows = DIGITS.slice(0, 200);
    let finished = false;
    const running = registry.use('job', async (model) => {
      const answer = await infer(model, {
        inputs: [
          {
            name: 'pixels',
            datatype: 'FP32',
            shape: [rows.length, 64],
            data: rows.map((r) => r.inputs.pixels),
          },
        ],
        outputs: [{ name: 'label' }],
      });
      finished = true;
      return answer;
    });
    const unloading = registry.unload('job');
    assert.equal(registry.isLoaded('job'), false, 'no new inference reaches it');
    await assert.rejects(
      registry.use('job', async () => 1),
      /not loaded/,
    );
    await unloading;
    assert.equal(finished, true, 'the session was released only after the inference');
    const answer = await running;
    assert.equal(answer.outputs[0]!.data.length, rows.length);
  });

  it('loading another model under a served name replaces it', async () => {
    const registry = new ModelRegistry(store);
    const first = await registry.load('job', 'm-131');
    const second = await registry.load('job', 'm-131-copy');
    assert.equal(second.alreadyLoaded, false);
    assert.notEqual(first.model, second.model);
    assert.equal(registry.get('job').modelId, 'm-131-copy');
    await registry.close();
  });
});
