/**
 * A warm pool of MLServers on Docker (the scenario: runtime-pool.scenario.ts), from the
 * mlserver image: an idle server's container is hardened as every worker's, its
 * repository an empty tmpfs and the model store mounted read-only for its guard's links.
 */
import assert from 'node:assert/strict';
import { MLSERVER_IMAGE } from '../helpers/paths.js';
import { startTestRouter, type TestRouter } from '../helpers/router.js';
import { POOL_ENV, runPoolScenario } from './runtime-pool.scenario.js';

const env = { ...POOL_ENV, MODELDOCK_MLSERVER_IMAGE: MLSERVER_IMAGE };

runPoolScenario('Docker', {
  // The lifecycle's own rules run on the process runtime (runtime-pool.test.ts).
  runtimeOnly: true,
  start: async () => {
    const t = await startTestRouter({ env });
    await t.docker
      .getImage(MLSERVER_IMAGE)
      .inspect()
      .catch(() => assert.fail(`image ${MLSERVER_IMAGE} is missing: run \`npm run images\``));
    return t;
  },
  restart: async (t: TestRouter) => {
    await t.stop();
    return startTestRouter({ instance: t.instance, dataDir: t.dataDir, env });
  },
  stop: (t) => t.cleanup(),
  kill: async (t, name) => {
    await t.docker.getContainer(name).kill({ signal: 'SIGKILL' });
  },
  checkPooled: async (t, worker) => {
    const info = await t.docker.getContainer(worker.id).inspect();
    assert.equal(info.Config.Image, MLSERVER_IMAGE);
    assert.equal(info.Config.User, '10001:10001');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    // The repository is an empty tmpfs (noexec); the store is read-only, as modeldock's worker sees it.
    assert.match(info.HostConfig.Tmpfs?.['/repository'] ?? '', /\bnoexec\b/);
    assert.ok(info.Mounts.some((m) => m.Destination === '/models' && m.RW === false));
    assert.ok(info.Mounts.every((m) => m.RW === false));
    assert.deepEqual(Object.keys(info.HostConfig.PortBindings ?? {}), ['8000/tcp']);
  },
});
