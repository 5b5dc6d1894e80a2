/** The engine allow-list (src/runtime/docker/engine-calls.ts): matching, and the same table in docs/security.md. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ENGINE_CALLS, containerOf, engineCallOf } from '../../src/runtime/docker/engine-calls.js';
import { REPO_ROOT } from '../helpers/paths.js';

describe('engine allow-list', () => {
  it('matches the calls dockerode makes, with or without an API version prefix', () => {
    assert.equal(engineCallOf('POST', '/containers/create')?.path, '/containers/create');
    assert.equal(engineCallOf('POST', '/v1.47/containers/abc123/start')?.path, '/containers/{id}/start');
    assert.equal(engineCallOf('DELETE', '/containers/t1-inf-0001')?.path, '/containers/{id}');
    assert.equal(engineCallOf('GET', '/images/modeldock/worker:sec/json')?.path, '/images/{name}/json');
    assert.equal(engineCallOf('GET', '/containers/json')?.path, '/containers/json');
  });

  it('refuses everything else', () => {
    for (const [method, url] of [
      ['POST', '/containers/abc/exec'],
      ['POST', '/exec/abc/start'],
      ['POST', '/containers/abc/attach'],
      ['DELETE', '/images/modeldock/worker:sec'],
      ['POST', '/swarm/init'],
      ['GET', '/secrets'],
      ['POST', '/containers/abc/start/extra'],
      ['PUT', '/containers/abc/archive'],
      ['POST', '/networks/create'],
    ]) {
      assert.equal(engineCallOf(method!, url!), undefined, `${method} ${url}`);
    }
  });

  it('names the container a path is about', () => {
    assert.equal(containerOf('/v1.47/containers/abc/start'), 'abc');
    assert.equal(containerOf('/containers/t1-inf-0001'), 't1-inf-0001');
    assert.equal(containerOf('/containers/create'), undefined);
    assert.equal(containerOf('/containers/json'), undefined);
  });

  it('is the table docs/security.md shows', async () => {
    const doc = await readFile(path.join(REPO_ROOT, 'docs/security.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `(GET|HEAD|POST|DELETE|PUT)` \| `([^`]+)` \|/gm)].map(
      (m) => `${m[1]} ${m[2]}`,
    );
    assert.deepEqual(
      rows,
      ENGINE_CALLS.map((call) => `${call.method} ${call.path}`),
    );
  });
});
