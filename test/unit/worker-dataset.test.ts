/**
 * The dataset store: records.jsonl read as documented in docs/model-and-dataset-files.md, every malformed
 * line refused with its line number, unknown datasets and path tricks refused before a
 * file is opened.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidInputError, NotFoundError } from '../../src/errors.js';
import { DatasetStore, parseRecords } from '../../src/worker/dataset-store.js';
import { DATASETS_DIR } from '../helpers/paths.js';

describe('worker dataset store', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-datasets-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const write = async (id: string, files: Record<string, string>) => {
    await mkdir(path.join(dir, id), { recursive: true });
    for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, id, name), text);
  };

  it('reads ds-550: 550 labelled 64-pixel digits and its metadata', async () => {
    const dataset = await new DatasetStore(DATASETS_DIR).read('ds-550');
    assert.equal(dataset.records.length, 550);
    assert.equal(dataset.metadata.count, 550);
    assert.equal(dataset.metadata.license, 'CC BY 4.0');
    for (const record of dataset.records) {
      assert.equal((record.inputs as { pixels: number[] }).pixels.length, 64);
      assert.ok(
        Number.isInteger(record.label) && (record.label as number) >= 0 && (record.label as number) <= 9,
      );
    }
  });

  it('accepts named or positional inputs, string labels, no labels and blank lines', () => {
    const records = parseRecords(
      'mixed',
      '{"inputs": {"x": [1, 2]}, "label": "cat"}\n\n{"inputs": [[3, 4]]}\n',
    );
    assert.deepEqual(records, [{ inputs: { x: [1, 2] }, label: 'cat' }, { inputs: [[3, 4]] }]);
  });

  const malformed: [string, string, RegExp][] = [
    ['a line that is not JSON', '{"inputs": {"x": [1]}}\n{"inputs": ', /line 2 is not JSON/],
    ['a line that is not an object', '[1, 2]', /line 1 is not a JSON object/],
    ['a record without inputs', '{"label": 1}', /line 1 has no "inputs"/],
    ['inputs that are a number', '{"inputs": 5}', /line 1 has no "inputs"/],
    ['a label that is an object', '{"inputs": {"x": [1]}, "label": {"a": 1}}', /line 1: "label" must be/],
    ['no records at all', '\n\n', /has no records/],
  ];
  for (const [what, text, message] of malformed) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => parseRecords('bad', text),
        (error: unknown) => {
          assert.ok(error instanceof InvalidInputError);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  it('refuses a dataset.json that is not a JSON object', async () => {
    await write('bad-meta', { 'records.jsonl': '{"inputs": {"x": [1]}}\n', 'dataset.json': '[1]' });
    await assert.rejects(new DatasetStore(dir).read('bad-meta'), /dataset.json must be a JSON object/);
  });

  it('answers not found for a missing dataset, invalid input for a path trick', async () => {
    const store = new DatasetStore(dir);
    await assert.rejects(store.read('ds-404'), NotFoundError);
    await assert.rejects(store.read('../ds-550'), InvalidInputError);
    await write('no-records', { 'dataset.json': '{}' });
    await assert.rejects(store.read('no-records'), /no no-records\/records.jsonl/);
  });
});
