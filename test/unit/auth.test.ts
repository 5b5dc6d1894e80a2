/** Keys, scopes and the route table (pure logic: src/api/auth.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANONYMOUS, KeyRing, accessOf, keyId } from '../../src/api/auth.js';

const ADMIN = 'admin-key-0123456789abcdef';
const INFER = 'infer-key-0123456789abcdef';

describe('KeyRing', () => {
  const ring = new KeyRing({ admin: [ADMIN], infer: [INFER] });

  it('names the caller by a fingerprint of the key, never the key', () => {
    const caller = ring.authenticate(`Bearer ${ADMIN}`);
    assert.deepEqual(caller, { id: keyId(ADMIN), scope: 'admin' });
    assert.match(caller!.id, /^key-[0-9a-f]{12}$/);
    assert.ok(!caller!.id.includes(ADMIN.slice(0, 8)));
    assert.notEqual(keyId(ADMIN), keyId(INFER));
  });

  it('accepts the Bearer scheme in any case, and nothing else', () => {
    assert.equal(ring.authenticate(`bearer ${INFER}`)?.scope, 'infer');
    assert.equal(ring.authenticate(`BEARER  ${INFER}`)?.scope, 'infer');
    for (const value of [
      undefined,
      '',
      INFER,
      `Basic ${INFER}`,
      `Bearer ${INFER}x`,
      `Bearer ${INFER.slice(0, -1)}`,
      'Bearer',
      `Bearer ${INFER} ${INFER}`,
    ]) {
      assert.equal(ring.authenticate(value), undefined, String(value));
    }
  });

  it('answers 401 without a valid key, 403 for the infer scope on admin, and lets open routes through', () => {
    assert.deepEqual(ring.authorize(undefined, 'infer'), {
      ok: false,
      status: 401,
      message: 'this request needs a key: send Authorization: Bearer <key>',
    });
    assert.equal(ring.authorize('Bearer wrong-wrong-wrong-wrong', 'authenticated').ok, false);
    const forbidden = ring.authorize(`Bearer ${INFER}`, 'admin');
    assert.equal(forbidden.ok, false);
    assert.equal(!forbidden.ok && forbidden.status, 403);
    assert.equal(ring.authorize(`Bearer ${INFER}`, 'infer').ok, true);
    assert.equal(ring.authorize(`Bearer ${INFER}`, 'authenticated').ok, true);
    assert.equal(ring.authorize(`Bearer ${ADMIN}`, 'infer').ok, true);
    assert.deepEqual(ring.authorize(undefined, 'open'), { ok: true, caller: ANONYMOUS });
  });

  it('swaps keys on replace (rotation): the old key stops, the new one works', () => {
    const rotating = new KeyRing({ admin: [ADMIN], infer: [] });
    rotating.replace({ admin: [ADMIN, `${ADMIN}-new`], infer: [] });
    assert.ok(rotating.authenticate(`Bearer ${ADMIN}`));
    assert.ok(rotating.authenticate(`Bearer ${ADMIN}-new`));
    rotating.replace({ admin: [`${ADMIN}-new`], infer: [] });
    assert.equal(rotating.authenticate(`Bearer ${ADMIN}`), undefined);
    assert.equal(rotating.size, 1);
  });

  it('a key listed for both scopes is admin', () => {
    assert.equal(
      new KeyRing({ admin: [ADMIN], infer: [ADMIN] }).authenticate(`Bearer ${ADMIN}`)?.scope,
      'admin',
    );
  });

  it('without keys asks for none: everyone is anonymous', () => {
    const open = new KeyRing();
    assert.equal(open.enabled, false);
    assert.deepEqual(open.authorize(undefined, 'admin'), { ok: true, caller: ANONYMOUS });
    assert.equal(ANONYMOUS.id, 'anonymous');
  });
});

describe('access of routes', () => {
  const access = (url: string | undefined, metricsPublic = false) => accessOf(url, { metricsPublic });

  it('keeps health open and metrics behind a key unless made public', () => {
    for (const url of [
      '/healthz',
      '/readyz',
      '/v2/health/live',
      '/v2/health/ready',
      '/openapi.json',
      '/ui',
      '/ui/',
      '/ui/:file',
    ]) {
      assert.equal(access(url), 'open', url);
    }
    assert.equal(access('/metrics'), 'authenticated');
    assert.equal(access('/metrics', true), 'open');
  });

  it('gives the infer scope inference, model metadata and the repository index', () => {
    for (const url of [
      '/v2/models/:job/infer',
      '/v2/models/:job',
      '/v2/models/:job/ready',
      '/v2/models/:job/config',
      '/v2/repository/index',
      '/v2/',
      '/v1/jobs/:job_id/infer',
    ]) {
      assert.equal(access(url), 'infer', url);
    }
  });

  it('keeps everything else admin, including routes nobody listed', () => {
    for (const url of [
      '/inference_router/',
      '/v1/jobs',
      '/v1/jobs/:job_id',
      '/v1/jobs/:job_id/terminate',
      '/v1/temp',
      '/v1/reconcile',
      '/v1/pool',
      '/v1/events',
      '/v1/operations',
      '/v2/repository/models/:job/load',
      '/v2/repository/models/:job/unload',
      '/v1/charts/operations.svg',
      '/some/future/route',
    ]) {
      assert.equal(access(url), 'admin', url);
    }
  });

  it('asks any valid key for a URL no route serves, so a 404 tells a stranger nothing', () => {
    assert.equal(access(undefined), 'authenticated');
  });
});
