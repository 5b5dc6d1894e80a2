/**
 * Seldon MLServer as a worker on Docker: the built-in `mlserver` entry runs its image
 * (`modeldock images mlserver`, built offline from the tests' venv) with modeldock's guard
 * in front (the scenario: runtime-mlserver.scenario.ts), hardened as the worker is.
 */
import assert from 'node:assert/strict';
import { MLSERVER_IMAGE } from '../helpers/paths.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { instanceContainers, postJson, startTestRouter } from '../helpers/router.js';
import { runMlserverScenario } from './runtime-mlserver.scenario.js';
import { describe, it } from 'node:test';

runMlserverScenario('Docker', {
  start: async (grpcPort) => {
    const t = await startTestRouter({
      env: { MODELDOCK_MLSERVER_IMAGE: MLSERVER_IMAGE, MODELDOCK_GRPC_PORT: String(grpcPort) },
    });
    await t.docker
      .getImage(MLSERVER_IMAGE)
      .inspect()
      .catch(() => assert.fail(`image ${MLSERVER_IMAGE} is missing: run \`npm run images\``));
    return t;
  },
  stop: (t) => t.cleanup(),
  checkCreated: async (t, worker) => {
    const info = await t.docker.getContainer(worker.id).inspect();
    assert.equal(info.Config.Image, MLSERVER_IMAGE);
    assert.equal(info.Config.User, '10001:10001');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    // No exec tmpfs: the entry asks for none (only Triton's does), /tmp stays noexec.
    assert.deepEqual(Object.keys(info.HostConfig.Tmpfs ?? {}), ['/tmp']);
    assert.match(info.HostConfig.Tmpfs!['/tmp']!, /\bnoexec\b/);
    assert.ok((info.HostConfig.Memory ?? 0) > 0 && (info.HostConfig.PidsLimit ?? 0) > 0);
    // Its repository is the job's model alone, read-only; no Docker socket.
    assert.ok(info.Mounts.some((m) => m.Destination === '/repository/a1' && m.Source.endsWith('/m-132')));
    assert.ok(info.Mounts.every((m) => m.RW === false));
    assert.ok(!info.Mounts.some((m) => m.Source.includes('docker.sock')));
    // Only the guard's port is published, on loopback.
    assert.deepEqual(Object.keys(info.HostConfig.PortBindings ?? {}), ['8000/tcp']);
    assert.equal(info.HostConfig.PortBindings!['8000/tcp']![0]!.HostIp, '127.0.0.1');
  },
});

describe('MLServer on Docker without its image', { timeout: 60_000 }, () => {
  it('DEPLOY_CREATE answers 400 naming the missing image, and runs nothing', async () => {
    const missing = 'modeldock/mlserver:missing-for-a-test';
    const t = await startTestRouter({ env: { MODELDOCK_MLSERVER_IMAGE: missing } });
    try {
      const create = ORIGIN_REQUESTS[0].replace('"m-131"', '"m-132"');
      const response = await postJson(`${t.url}/inference_router/`, create);
      assert.equal(response.status, 400, JSON.stringify(response.body));
      assert.match(response.body.error.message, /image modeldock\/mlserver:missing-for-a-test is missing/);
      assert.deepEqual(await instanceContainers(t.docker, t.instance), []);
    } finally {
      await t.cleanup();
    }
  });
});
