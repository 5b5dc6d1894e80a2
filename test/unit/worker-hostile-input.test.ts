/**
 * The worker in-process against hostile and unusual requests (issue #17): every
 * malformed tensor is a clear 400 (never a 500, never a silent wrap), only the holder of
 * the worker's secret may drive it, and the stores never leave their root nor quote file
 * content.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWorkerApp, type WorkerApp } from '../../src/worker/app.js';
import { DIGITS } from '../helpers/fixtures.js';
import { TEST_MODELS_DIR, ensureHostileModel } from '../helpers/models.js';
import { MODELS_DIR } from '../helpers/paths.js';

/** The header the router sends its worker's secret in (docs/worker.md). */
const WORKER_SECRET_HEADER = 'x-modeldock-worker-secret';
const SECRET = 'correct-horse-battery-staple-0123456789';
const SECRET_CONTENT = 'root:$6$hidden-hash-the-attacker-wants:19000:0:99999:7:::';

describe('worker: hostile requests', () => {
  let worker: WorkerApp;
  let root: string;
  const auth = { [WORKER_SECRET_HEADER]: SECRET };

  const post = (url: string, payload: unknown, headers: Record<string, string> = auth) =>
    worker.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', ...headers },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });
  /** Every input the model needs, with `inputs` replacing the defaults of the same name. */
  const withDefaults = (inputs: { name: string; [field: string]: unknown }[]) => {
    const defaults = [
      { name: 'a', datatype: 'FP32', shape: [1, 1], data: [1] },
      { name: 'b', datatype: 'FP32', shape: [1, 1], data: [1] },
      { name: 'u8', datatype: 'UINT8', shape: [1], data: [1] },
      { name: 'i8', datatype: 'INT8', shape: [1], data: [1] },
      { name: 'i16', datatype: 'INT16', shape: [1], data: [1] },
    ];
    return [...inputs, ...defaults.filter((d) => !inputs.some((i) => i.name === d.name))];
  };
  const infer = (inputs: { name: string; [field: string]: unknown }[], outputs?: string[]) =>
    post('/v2/models/h/infer', {
      inputs: withDefaults(inputs),
      ...(outputs ? { outputs: outputs.map((name) => ({ name })) } : {}),
    });

  before(async () => {
    const id = await ensureHostileModel();
    root = await mkdtemp(path.join(os.tmpdir(), 'modeldock-hostile-'));
    const models = path.join(root, 'models');
    const datasets = path.join(root, 'datasets');
    const outside = path.join(root, 'outside');
    await mkdir(outside, { recursive: true });
    await writeFile(path.join(outside, 'shadow'), `${SECRET_CONTENT}\n`);
    await mkdir(path.join(outside, 'evil-model'), { recursive: true });
    await copyFile(path.join(MODELS_DIR, 'm-131/model.onnx'), path.join(outside, 'evil-model/model.onnx'));

    await mkdir(path.join(models, 'hostile'), { recursive: true });
    await copyFile(path.join(TEST_MODELS_DIR, id, 'model.onnx'), path.join(models, 'hostile/model.onnx'));
    await mkdir(path.join(models, 'digits'), { recursive: true });
    await copyFile(path.join(MODELS_DIR, 'm-131/model.onnx'), path.join(models, 'digits/model.onnx'));
    // model.json that is a link to a file outside the store
    await mkdir(path.join(models, 'linked-manifest'), { recursive: true });
    await copyFile(
      path.join(MODELS_DIR, 'm-131/model.onnx'),
      path.join(models, 'linked-manifest/model.onnx'),
    );
    await symlink(path.join(outside, 'shadow'), path.join(models, 'linked-manifest/model.json'));
    // model.json inside the store that is not JSON: its content must not be quoted
    await mkdir(path.join(models, 'bad-manifest'), { recursive: true });
    await copyFile(path.join(MODELS_DIR, 'm-131/model.onnx'), path.join(models, 'bad-manifest/model.onnx'));
    await writeFile(path.join(models, 'bad-manifest/model.json'), SECRET_CONTENT);
    // a whole model directory that is a link out of the store
    await symlink(path.join(outside, 'evil-model'), path.join(models, 'linked-dir'));

    await mkdir(path.join(datasets, 'linked-records'), { recursive: true });
    await symlink(path.join(outside, 'shadow'), path.join(datasets, 'linked-records/records.jsonl'));
    await mkdir(path.join(datasets, 'bad-records'), { recursive: true });
    await writeFile(path.join(datasets, 'bad-records/records.jsonl'), `${SECRET_CONTENT}\n`);
    await mkdir(path.join(datasets, 'bad-metadata'), { recursive: true });
    await writeFile(
      path.join(datasets, 'bad-metadata/records.jsonl'),
      JSON.stringify({ inputs: { pixels: DIGITS[0]!.inputs.pixels }, label: 0 }),
    );
    await writeFile(path.join(datasets, 'bad-metadata/dataset.json'), SECRET_CONTENT);
    await mkdir(path.join(datasets, 'linked-metadata'), { recursive: true });
    await writeFile(
      path.join(datasets, 'linked-metadata/records.jsonl'),
      JSON.stringify({ inputs: { pixels: DIGITS[0]!.inputs.pixels }, label: 0 }),
    );
    await symlink(path.join(outside, 'shadow'), path.join(datasets, 'linked-metadata/dataset.json'));

    worker = await buildWorkerApp({
      modelsDir: models,
      datasetsDir: datasets,
      secret: SECRET,
      maxElements: 4096,
    });
    for (const [name, model] of [
      ['h', 'hostile'],
      ['d', 'digits'],
    ]) {
      const loaded = await post(`/v2/repository/models/${name}/load`, { parameters: { model_id: model } });
      assert.equal(loaded.statusCode, 200, loaded.body);
    }
  });
  after(async () => {
    await worker?.app.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  describe('only the router drives the worker', () => {
    const driving: [string, string, unknown][] = [
      ['POST', '/v2/repository/models/d/unload', {}],
      ['POST', '/v2/repository/models/x/load', { parameters: { model_id: 'digits' } }],
      ['POST', '/v2/repository/index', {}],
      ['POST', '/v2/models/d/infer', { inputs: [] }],
      ['POST', '/v2/models/d/batch', { dataset: 'bad-records' }],
      ['GET', '/v2/models/d', undefined],
      ['GET', '/v2/worker/stats', undefined],
      ['GET', '/v2', undefined],
    ];
    for (const [method, url, payload] of driving) {
      for (const [why, headers] of [
        ['no secret', {}],
        ['a wrong secret', { [WORKER_SECRET_HEADER]: `${SECRET}x` }],
        ['a secret one character short', { [WORKER_SECRET_HEADER]: SECRET.slice(0, -1) }],
      ] as const) {
        it(`${method} ${url} with ${why} → 401, nothing done`, async () => {
          const response = await worker.app.inject({
            method: method as 'GET' | 'POST',
            url,
            headers: { 'content-type': 'application/json', ...headers },
            ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }),
          });
          assert.equal(response.statusCode, 401, response.body);
          assert.match(response.json().error, /secret/);
          assert.equal(worker.registry.isLoaded('d'), true);
        });
      }
    }
    for (const url of ['/v2/health/live', '/v2/health/ready']) {
      it(`${url} answers without the secret (health checks)`, async () => {
        const response = await worker.app.inject({ method: 'GET', url });
        assert.equal(response.statusCode, 200);
      });
    }
    it('with the secret the same calls work', async () => {
      const response = await worker.app.inject({ method: 'GET', url: '/v2/worker/stats', headers: auth });
      assert.equal(response.statusCode, 200, response.body);
    });
  });

  describe('tensor validation: 400 with a clear message', () => {
    const f32 = (name: string, shape: number[], data: unknown) => ({ name, datatype: 'FP32', shape, data });
    it('data nested 20,000 deep → 400', async () => {
      const deep = `${'['.repeat(20_000)}1${']'.repeat(20_000)}`;
      const others = JSON.stringify(withDefaults([{ name: 'a' }]).slice(1));
      const response = await post(
        '/v2/models/h/infer',
        `{"inputs":[{"name":"a","datatype":"FP32","shape":[1,1],"data":${deep}},${others.slice(1, -1)}]}`,
      );
      assert.equal(response.statusCode, 400, response.body.slice(0, 300));
      assert.match(response.json().error, /nested deeper than the rank/);
    });
    const cases: [string, { name: string; [field: string]: unknown }[], RegExp][] = [
      [
        'data nested deeper than the rank',
        [f32('a', [1, 1], [[[1]]]), f32('b', [1, 1], [1])],
        /nested deeper/,
      ],
      ['a dimension above 2^31-1', [f32('a', [0, 2 ** 60], []), f32('b', [1, 1], [1])], /2147483647/],
      ['a dimension of 2^31', [f32('a', [2 ** 31, 0], []), f32('b', [1, 1], [1])], /2147483647/],
      ['more elements than the maximum', [f32('a', [65, 64], []), f32('b', [1, 1], [1])], /4096/],
      ['a non-integer dimension', [f32('a', [1.5, 1], [1]), f32('b', [1, 1], [1])], /non-negative integers/],
      ['an FP32 beyond its range (would become infinity)', [f32('a', [1, 1], [1e39])], /FP32/],
      ['a string among numbers', [f32('a', [1, 2], [1, '2']), f32('b', [1, 1], [1])], /finite number/],
      ['an object as data', [f32('a', [1, 1], { x: 1 }), f32('b', [1, 1], [1])], /./],
      [
        'shapes that do not broadcast (ONNX Runtime refuses)',
        [f32('a', [2, 3], [1, 2, 3, 4, 5, 6]), f32('b', [1, 2], [1, 2])],
        /./,
      ],
    ];
    for (const [name, inputs, message] of cases) {
      it(`${name} → 400`, async () => {
        const response = await infer(inputs, ['sum']);
        assert.equal(response.statusCode, 400, response.body);
        assert.match(response.json().error, message);
      });
    }

    const ranges: [string, string, number[], RegExp][] = [
      ['UINT8', 'u8', [300], /UINT8.*0.*255/],
      ['UINT8', 'u8', [-1], /UINT8/],
      ['INT8', 'i8', [128], /INT8.*-128.*127/],
      ['INT8', 'i8', [-129], /INT8/],
      ['INT16', 'i16', [40000], /INT16.*-32768.*32767/],
    ];
    for (const [datatype, name, data, message] of ranges) {
      it(`${datatype} ${data[0]} is out of range → 400, never wrapped`, async () => {
        const response = await infer([{ name, datatype, shape: [data.length], data }], [`${name}_out`]);
        assert.equal(response.statusCode, 400, response.body);
        assert.match(response.json().error, message);
      });
    }
    it('values at the edges of each range pass unchanged', async () => {
      const response = await infer(
        [
          { name: 'u8', datatype: 'UINT8', shape: [2], data: [0, 255] },
          { name: 'i8', datatype: 'INT8', shape: [2], data: [-128, 127] },
          { name: 'i16', datatype: 'INT16', shape: [2], data: [-32768, 32767] },
        ],
        ['u8_out', 'i8_out', 'i16_out'],
      );
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(
        response.json().outputs.map((o: { data: number[] }) => o.data),
        [
          [0, 255],
          [-128, 127],
          [-32768, 32767],
        ],
      );
    });
    it('a well-formed request still answers 200 after all of that', async () => {
      const response = await infer([f32('a', [1, 2], [[1, 2]]), f32('b', [1, 2], [10, 20])], ['sum']);
      assert.equal(response.statusCode, 200, response.body);
      assert.deepEqual(response.json().outputs[0].data, [11, 22]);
    });
    it('binary tensors: a dimension above 2^31-1 → 400', async () => {
      const header = Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [2 ** 40, 0], parameters: { binary_data_size: 0 } },
            { name: 'b', datatype: 'FP32', shape: [1, 1], parameters: { binary_data_size: 4 } },
          ],
        }),
      );
      const response = await worker.app.inject({
        method: 'POST',
        url: '/v2/models/h/infer',
        headers: {
          ...auth,
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(header.length),
        },
        payload: Buffer.concat([header, Buffer.alloc(4)]),
      });
      assert.equal(response.statusCode, 400, response.body);
      assert.match(response.json().error, /2147483647/);
    });
  });

  describe('stores: no way out of the root, no file content in errors', () => {
    const load = (modelId: string) =>
      post('/v2/repository/models/x/load', { parameters: { model_id: modelId } });
    const batch = (dataset: string) => post('/v2/models/d/batch', { dataset });
    const noLeak = (body: string) => {
      assert.doesNotMatch(body, /hidden-hash/);
      assert.doesNotMatch(body, /root:/);
    };
    it('a model.json linked to a file outside the store is refused', async () => {
      const response = await load('linked-manifest');
      assert.equal(response.statusCode, 400, response.body);
      assert.match(response.json().error, /outside the model store/);
      noLeak(response.body);
    });
    it('a model directory linked outside the store is refused', async () => {
      const response = await load('linked-dir');
      assert.ok([400, 404].includes(response.statusCode), response.body);
      assert.match(response.json().error, /outside the model store|not found/);
    });
    it('a model.json that is not JSON is named, not quoted', async () => {
      const response = await load('bad-manifest');
      assert.equal(response.statusCode, 400, response.body);
      assert.match(response.json().error, /model\.json is not JSON/);
      noLeak(response.body);
    });
    for (const [dataset, message] of [
      ['linked-records', /outside the dataset store/],
      ['linked-metadata', /outside the dataset store/],
      ['bad-records', /line 1 is not JSON/],
      ['bad-metadata', /dataset\.json is not JSON/],
    ] as const) {
      it(`dataset ${dataset} → 400 without its content`, async () => {
        const response = await batch(dataset);
        assert.equal(response.statusCode, 400, response.body);
        assert.match(response.json().error, message);
        noLeak(response.body);
      });
    }
  });
});
