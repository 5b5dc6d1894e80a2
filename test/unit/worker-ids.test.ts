/**
 * Ids become directory names in the model and dataset stores: only a safe alphabet gets
 * through, so no request can reach a file outside the store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidInputError } from '../../src/errors.js';
import { validateId } from '../../src/ids.js';

describe('worker ids', () => {
  for (const id of ['m-131', 'ds-550', 'job_1.v2', 'A', 'x'.repeat(128)]) {
    it(`accepts ${id.length > 20 ? `a ${id.length}-character id` : id}`, () => {
      assert.equal(validateId('model', id), id);
    });
  }
  const refused: [string, unknown][] = [
    ['a parent directory', '../m-131'],
    ['a double dot inside', 'a..b'],
    ['a slash', 'models/m-131'],
    ['a backslash', 'm\\131'],
    ['a leading dot', '.hidden'],
    ['a leading dash', '-rf'],
    ['an absolute path', '/etc/passwd'],
    ['a NUL byte', 'm\u0000131'],
    ['a percent-encoded slash', 'a%2Fb'],
    ['129 characters', 'x'.repeat(129)],
    ['an empty string', ''],
    ['a number', 131],
    ['nothing', undefined],
  ];
  for (const [what, value] of refused) {
    it(`refuses ${what}`, () => {
      assert.throws(() => validateId('model', value), InvalidInputError);
    });
  }
});
