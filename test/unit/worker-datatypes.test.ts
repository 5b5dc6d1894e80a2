/**
 * The worker in-process on a generated model with one input and output per datatype
 * (FP32, FP64, INT32, INT64, BOOL): values go through ONNX Runtime and come back as the
 * model computes them; and batch inference over datasets written the other documented
 * ways (positional inputs, string labels, no labels, bad records).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWorkerApp, type WorkerApp } from '../../src/worker/app.js';
import { DIGITS } from '../helpers/fixtures.js';
import { TEST_MODELS_DIR, ensureDatatypesModel } from '../helpers/models.js';
import { MODELS_DIR } from '../helpers/paths.js';

describe('worker: every datatype, and datasets in every documented form', () => {
  let worker: WorkerApp;
  let root: string;
  before(async () => {
    const id = await ensureDatatypesModel();
    root = await mkdtemp(path.join(os.tmpdir(), 'modeldock-worker-'));
    const models = path.join(root, 'models');
    const datasets = path.join(root, 'datasets');
    await mkdir(path.join(models, 'datatypes'), { recursive: true });
    await copyFile(path.join(TEST_MODELS_DIR, id, 'model.onnx'), path.join(models, 'datatypes/model.onnx'));
    // m-131 with its labels named, so datasets may label records by name.
    await mkdir(path.join(models, 'digits'));
    await copyFile(path.join(MODELS_DIR, 'm-131/model.onnx'), path.join(models, 'digits/model.onnx'));
    const names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
    await writeFile(path.join(models, 'digits/model.json'), JSON.stringify({ labels: names }));
    const dataset = async (name: string, lines: unknown[]) => {
      await mkdir(path.join(datasets, name), { recursive: true });
      await writeFile(
        path.join(datasets, name, 'records.jsonl'),
        lines.map((l) => JSON.stringify(l)).join('\n'),
      );
    };
    const sample = DIGITS.slice(0, 20);
    await dataset(
      'positional',
      sample.map((r) => ({ inputs: [r.inputs.pixels], label: r.label })),
    );
    await dataset(
      'named-labels',
      sample.map((r) => ({ inputs: r.inputs, label: names[r.label] })),
    );
    await dataset(
      'nested-unlabelled',
      sample.map((r) => ({
        // An 8×8 image, row by row, for the model's [batch, 64] input.
        inputs: {
          pixels: Array.from({ length: 8 }, (_, row) => r.inputs.pixels.slice(row * 8, row * 8 + 8)),
        },
      })),
    );
    await dataset('short-record', [
      { inputs: { pixels: sample[0]!.inputs.pixels } },
      { inputs: { pixels: sample[1]!.inputs.pixels.slice(1) } },
    ]);
    await dataset('wrong-input', [{ inputs: { image: sample[0]!.inputs.pixels } }]);
    worker = await buildWorkerApp({ modelsDir: models, datasetsDir: datasets });
    for (const name of ['datatypes', 'digits']) {
      const load = await worker.app.inject({ method: 'POST', url: `/v2/repository/models/${name}/load` });
      assert.equal(load.statusCode, 200, load.body);
    }
  });
  after(async () => {
    await worker?.app.close();
    await rm(root, { recursive: true, force: true });
  });

  const post = (url: string, body: unknown) =>
    worker.app.inject({ method: 'POST', url, payload: body as object });

  it('reads each input and output datatype from the graph', async () => {
    const meta = (await worker.app.inject('/v2/models/datatypes')).json();
    assert.deepEqual(
      meta.inputs.map((i: { name: string; datatype: string }) => `${i.name}:${i.datatype}`),
      ['f32:FP32', 'f64:FP64', 'i32:INT32', 'i64:INT64', 'b:BOOL'],
    );
    assert.deepEqual(meta.outputs[3], { name: 'i64_triple', datatype: 'INT64', shape: [-1, 2] });
  });

  it('computes on FP32, FP64, INT32, INT64 and BOOL and answers in the same datatypes', async () => {
    const response = await post('/v2/models/datatypes/infer', {
      inputs: [
        {
          name: 'f32',
          datatype: 'FP32',
          shape: [2, 2],
          data: [
            [1, 2],
            [3, -4],
          ],
        },
        { name: 'f64', datatype: 'FP64', shape: [2, 2], data: [0.1, 0.2, 1e200, -3] },
        { name: 'i32', datatype: 'INT32', shape: [2, 2], data: [0, -1, 41, 2147483646] },
        { name: 'i64', datatype: 'INT64', shape: [2, 2], data: [1, -2, 3000000000, 0] },
        { name: 'b', datatype: 'BOOL', shape: [2, 2], data: [true, false, false, true] },
      ],
    });
    assert.equal(response.statusCode, 200, response.body);
    const out = Object.fromEntries(
      response
        .json()
        .outputs.map((o: { name: string; datatype: string; shape: number[]; data: unknown[] }) => [
          o.name,
          o,
        ]),
    );
    assert.deepEqual(out.f32_half.data, [0.5, 1, 1.5, -2]);
    assert.deepEqual(out.f64_double.data, [0.2, 0.4, 2e200, -6]);
    assert.deepEqual(out.i32_plus_one.data, [1, 0, 42, 2147483647]);
    assert.deepEqual(out.i64_triple, {
      name: 'i64_triple',
      shape: [2, 2],
      datatype: 'INT64',
      data: [3, -6, 9000000000, 0],
    });
    assert.deepEqual(out.b_not, {
      name: 'b_not',
      shape: [2, 2],
      datatype: 'BOOL',
      data: [false, true, true, false],
    });
  });

  it('answers 400 when one of several inputs is missing or given twice', async () => {
    const f32 = { name: 'f32', datatype: 'FP32', shape: [1, 2], data: [1, 2] };
    const missing = await post('/v2/models/datatypes/infer', { inputs: [f32] });
    assert.equal(missing.statusCode, 400);
    assert.match(missing.json().error, /missing input\(s\): f64, i32, i64, b/);
    const twice = await post('/v2/models/datatypes/infer', { inputs: [f32, f32] });
    assert.equal(twice.statusCode, 400);
    assert.match(twice.json().error, /given twice/);
  });

  /** A binary-extension request: JSON header, then each binary input's bytes. */
  const binaryInfer = (header: unknown, parts: ArrayBufferView[], headerLength?: string) => {
    const json = Buffer.from(JSON.stringify(header));
    const bytes = parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    return worker.app.inject({
      method: 'POST',
      url: '/v2/models/datatypes/infer',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': headerLength ?? String(json.length),
      },
      payload: Buffer.concat([json, ...bytes]),
    });
  };
  const binaryInput = (name: string, datatype: string, data: ArrayBufferView) => ({
    name,
    datatype,
    shape: [2, 2],
    parameters: { binary_data_size: data.byteLength },
  });
  const allInputs = () => ({
    f32: new Float32Array([1, 2, 3, -4]),
    f64: new Float64Array([0.1, 0.2, 1e200, -3]),
    i32: new Int32Array([0, -1, 41, 2147483646]),
    i64: new BigInt64Array([1n, -2n, 3000000000n, 0n]),
    b: new Uint8Array([1, 0, 0, 1]),
  });
  const DATATYPE = { f32: 'FP32', f64: 'FP64', i32: 'INT32', i64: 'INT64', b: 'BOOL' } as const;

  it('speaks the binary tensor extension: raw input bytes, raw output bytes after the JSON', async () => {
    const data = allInputs();
    const names = Object.keys(data) as (keyof typeof data)[];
    const response = await binaryInfer(
      {
        id: 'bin',
        inputs: names.map((n) => binaryInput(n, DATATYPE[n], data[n])),
        parameters: { binary_data_output: true },
      },
      names.map((n) => data[n]),
    );
    assert.equal(response.statusCode, 200, response.body);
    assert.equal(response.headers['content-type'], 'application/octet-stream');
    const length = Number(response.headers['inference-header-content-length']);
    const raw = response.rawPayload;
    const header = JSON.parse(raw.subarray(0, length).toString('utf8'));
    assert.equal(header.id, 'bin');
    let offset = length;
    const out: Record<string, Buffer> = {};
    for (const o of header.outputs as { name: string; parameters: { binary_data_size: number } }[]) {
      assert.equal(o.name in out, false);
      out[o.name] = Buffer.from(raw.subarray(offset, offset + o.parameters.binary_data_size));
      offset += o.parameters.binary_data_size;
    }
    assert.equal(offset, raw.length, 'nothing after the last output');
    const view = <T>(
      b: Buffer,
      Typed: new (buffer: ArrayBufferLike, offset: number, length: number) => T,
      size: number,
    ) => new Typed(b.buffer, b.byteOffset, b.byteLength / size);
    assert.deepEqual([...view(out.f32_half!, Float32Array, 4)], [0.5, 1, 1.5, -2]);
    assert.deepEqual([...view(out.f64_double!, Float64Array, 8)], [0.2, 0.4, 2e200, -6]);
    assert.deepEqual([...view(out.i32_plus_one!, Int32Array, 4)], [1, 0, 42, 2147483647]);
    assert.deepEqual([...view(out.i64_triple!, BigInt64Array, 8)], [3n, -6n, 9000000000n, 0n]);
    assert.deepEqual([...out.b_not!], [0, 1, 1, 0]);
  });

  it('mixes JSON and binary inputs and outputs in one request', async () => {
    const data = allInputs();
    const response = await binaryInfer(
      {
        inputs: [
          { name: 'f32', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, -4] },
          binaryInput('f64', 'FP64', data.f64),
          { name: 'i32', datatype: 'INT32', shape: [2, 2], data: [0, -1, 41, 2147483646] },
          binaryInput('i64', 'INT64', data.i64),
          binaryInput('b', 'BOOL', data.b),
        ],
        outputs: [{ name: 'f32_half' }, { name: 'i64_triple', parameters: { binary_data: true } }],
      },
      [data.f64, data.i64, data.b],
    );
    assert.equal(response.statusCode, 200, response.body);
    const length = Number(response.headers['inference-header-content-length']);
    const header = JSON.parse(response.rawPayload.subarray(0, length).toString('utf8'));
    assert.deepEqual(header.outputs[0].data, [0.5, 1, 1.5, -2]);
    assert.deepEqual(header.outputs[1].parameters, { binary_data_size: 32 });
    const tail = Buffer.from(response.rawPayload.subarray(length));
    assert.deepEqual([...new BigInt64Array(tail.buffer, tail.byteOffset, 4)], [3n, -6n, 9000000000n, 0n]);

    const json = await post('/v2/models/datatypes/infer', {
      inputs: (Object.keys(data) as (keyof typeof data)[]).map((n) => ({
        name: n,
        datatype: DATATYPE[n],
        shape: [2, 2],
        data: n === 'b' ? [true, false, false, true] : [...data[n]].map(Number),
      })),
    });
    assert.equal(
      json.headers['content-type'],
      'application/json; charset=utf-8',
      'no binary asked, none sent',
    );
  });

  it('refuses binary bodies that do not add up, with a 400 that says how', async () => {
    const data = allInputs();
    const names = Object.keys(data) as (keyof typeof data)[];
    const inputs = names.map((n) => binaryInput(n, DATATYPE[n], data[n]));
    const parts = names.map((n) => data[n]);
    const cases: [string, Promise<{ statusCode: number; json: () => { error: string } }>, RegExp][] = [
      [
        'a size that is not the shape',
        binaryInfer({ inputs: [{ ...inputs[0]!, shape: [1, 2] }, ...inputs.slice(1)] }, parts),
        /input "f32" has 16 bytes of binary data; FP32 \[1,2\] needs 8/,
      ],
      [
        'bytes left over',
        binaryInfer({ inputs }, [...parts, new Uint8Array(3)]),
        /carries \d+ bytes .* inputs use/,
      ],
      [
        'bytes missing',
        binaryInfer({ inputs }, parts.slice(0, 4)),
        /binary_data_size 4 does not fit the 0 bytes left/,
      ],
      ['a header length past the body', binaryInfer({ inputs }, parts, '999999'), /does not fit a body/],
      [
        'a BOOL byte that is not 0 or 1',
        binaryInfer({ inputs }, [...parts.slice(0, 4), new Uint8Array([1, 2, 0, 1])]),
        /0 or 1/,
      ],
      [
        'a binary body without the header',
        worker.app.inject({
          method: 'POST',
          url: '/v2/models/datatypes/infer',
          headers: { 'content-type': 'application/octet-stream' },
          payload: Buffer.from('{}'),
        }),
        /needs the Inference-Header-Content-Length/,
      ],
      [
        'binary_data_size in a plain JSON request',
        post('/v2/models/datatypes/infer', { inputs }),
        /carries no binary data/,
      ],
    ];
    for (const [what, pending, message] of cases) {
      const response = await pending;
      assert.equal(response.statusCode, 400, what);
      assert.match(response.json().error, message, what);
    }
  });

  it('runs datasets with positional inputs, label names, nested samples and no labels', async () => {
    const positional = (await post('/v2/models/digits/batch', { dataset: 'positional' })).json();
    assert.equal(positional.count, 20);
    const named = (await post('/v2/models/digits/batch', { dataset: 'named-labels' })).json();
    assert.deepEqual(named.predictions, positional.predictions);
    assert.equal(named.correct, positional.correct, 'a label name counts as its class index');
    assert.ok(named.correct >= 19, `${named.correct}/20`);
    assert.equal(
      named.predicted_labels[0],
      ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'][named.predictions[0]],
    );
    const unlabelled = (await post('/v2/models/digits/batch', { dataset: 'nested-unlabelled' })).json();
    assert.deepEqual(unlabelled.predictions, positional.predictions);
    assert.equal(unlabelled.accuracy, null);
  });

  it('names the record that does not fit the model', async () => {
    const short = await post('/v2/models/digits/batch', { dataset: 'short-record' });
    assert.equal(short.statusCode, 400);
    assert.match(
      short.json().error,
      /record 2: input "pixels" has 63 values; samples of shape \[64\] need 64/,
    );
    const wrong = await post('/v2/models/digits/batch', { dataset: 'wrong-input' });
    assert.equal(wrong.statusCode, 400);
    assert.match(wrong.json().error, /record 1 lacks input "pixels"/);
    const absent = await post('/v2/models/nobody/batch', { dataset: 'positional' });
    assert.equal(absent.statusCode, 404);
    assert.equal((await post('/v2/models/digits/batch', {})).statusCode, 400);
  });
});
