import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toErrorResponse } from '../../src/api/error-mapping.js';
import {
  ConflictError,
  InvalidInputError,
  NotFoundError,
  NotReadyError,
  RuntimeUnavailableError,
  StaleVersionError,
  StoreUnavailableError,
} from '../../src/errors.js';

describe('error mapping at the HTTP edge', () => {
  it('maps domain errors to the statuses of docs/api.md (Errors)', () => {
    assert.equal(toErrorResponse(new InvalidInputError('x')).status, 400);
    assert.equal(toErrorResponse(new NotFoundError('x')).status, 404);
    assert.equal(toErrorResponse(new ConflictError('x')).status, 409);
    assert.equal(toErrorResponse(new StaleVersionError('x')).status, 409);
    assert.equal(toErrorResponse(new RuntimeUnavailableError('x')).status, 503);
    assert.equal(toErrorResponse(new StoreUnavailableError('x')).status, 503);
  });

  it('answers {"error": {"code","message"}} and hides internals of unknown errors', () => {
    const known = toErrorResponse(new NotFoundError('job a9 not found'));
    assert.deepEqual(known.body, { error: { code: 'not_found', message: 'job a9 not found' } });
    const unknown = toErrorResponse(new TypeError('secret stack detail'));
    assert.equal(unknown.status, 500);
    assert.deepEqual(unknown.body, { error: { code: 'internal', message: 'internal error' } });
  });

  it('a server still loading is a 503 that says when to come back', () => {
    const answer = toErrorResponse(new NotReadyError('job j1 is not ready yet', 30));
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error.code, 'not_ready');
    assert.deepEqual(answer.headers, { 'retry-after': '30' });
    assert.equal(toErrorResponse(new NotFoundError('x')).headers, undefined);
  });
});
