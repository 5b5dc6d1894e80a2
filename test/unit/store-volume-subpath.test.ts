/**
 * A router in a container whose store is a subfolder of a named volume (issue #17): the
 * workers mount that subfolder itself where the engine can (API ≥ 1.45, Engine 26), and
 * otherwise the router refuses to start with the fix in the message. Never a copy that
 * goes stale.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ContainerDetails } from '../../src/runtime/docker/docker-engine.js';
import { translatePath } from '../../src/runtime/docker/self-container.js';

const self: ContainerDetails = {
  id: 'c'.repeat(64),
  name: 'router',
  image: 'modeldock/router',
  labels: {},
  status: 'running',
  running: true,
  exitCode: null,
  oomKilled: false,
  error: null,
  startedAt: null,
  finishedAt: null,
  publishedPorts: {},
  networks: ['net'],
  mounts: [
    { type: 'volume', source: '/var/lib/docker/volumes/data/_data', destination: '/data', name: 'data' },
    { type: 'bind', source: '/srv/stores', destination: '/stores', name: null },
  ],
};

describe('translatePath: stores on mounts', () => {
  it('a whole volume is mounted as it is', () => {
    assert.deepEqual(translatePath(self, '/data', { volumeSubpath: false }), {
      type: 'volume',
      source: 'data',
    });
  });
  it('a bind mount subfolder is the host path below it', () => {
    assert.equal(translatePath(self, '/stores/models', { volumeSubpath: false }), '/srv/stores/models');
  });
  it('a volume subfolder is mounted with its subpath when the engine supports it', () => {
    assert.deepEqual(translatePath(self, '/data/models', { volumeSubpath: true }), {
      type: 'volume',
      source: 'data',
      subpath: 'models',
    });
  });
  it('a volume subfolder on an older engine is refused with the fix named', () => {
    assert.throws(
      () => translatePath(self, '/data/stores/models', { volumeSubpath: false }),
      (error: Error) =>
        /subfolder stores\/models of volume data/.test(error.message) &&
        /Engine 26/.test(error.message) &&
        /mount the folder itself/.test(error.message),
    );
  });
});
