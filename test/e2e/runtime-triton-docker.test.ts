/**
 * NVIDIA Triton as a worker on Docker: the built-in `triton` entry runs its image
 * (`modeldock images triton`: the server, backends and Python backend of the
 * nvidia-pytriton wheel, built offline from the tests' triton venv) behind modeldock's
 * guard, and serves m-133, the example store's Python-backend model. The original five
 * requests (model id changed) work on it, inference through the router answers as
 * Triton does when called directly, and TEMP reports the accuracy training measured.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { TRITON_IMAGE } from '../helpers/paths.js';
import { instanceContainers, startTestRouter, type TestRouter } from '../helpers/router.js';
import {
  assertDeployedOn,
  assertLoadUnloadTerminate,
  assertTempAsTrained,
} from '../helpers/scratch-router.js';

const requests = ORIGIN_REQUESTS.map((body) => body.replace('"m-131"', '"m-133"'));

describe('Triton as a worker (Docker)', { timeout: 300_000 }, () => {
  let t: TestRouter;

  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_TRITON_IMAGE: TRITON_IMAGE } });
    await t.docker
      .getImage(TRITON_IMAGE)
      .inspect()
      .catch(() => assert.fail(`image ${TRITON_IMAGE} is missing: run \`npm run images\``));
  });
  after(async () => {
    await t?.cleanup();
  });

  it('DEPLOY_CREATE runs the triton image, hardened as the worker is, and loads m-133; inference is routed to it', async () => {
    const worker = await assertDeployedOn(t, requests[0]!, 'triton');
    const info = await t.docker.getContainer(worker.id).inspect();
    assert.equal(info.Config.Image, TRITON_IMAGE);
    assert.equal(info.Config.User, '10001:10001');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    // /tmp stays noexec; the Python backend runs its stub from a tmpfs of its own, and only there.
    assert.deepEqual(Object.keys(info.HostConfig.Tmpfs ?? {}).sort(), ['/opt/triton-backends', '/tmp']);
    assert.match(info.HostConfig.Tmpfs!['/tmp']!, /\bnoexec\b/);
    assert.match(
      info.HostConfig.Tmpfs!['/opt/triton-backends']!,
      /\bexec\b.*\bnosuid\b.*\bnodev\b.*uid=10001/,
    );
    assert.ok(info.Mounts.some((m) => m.Destination === '/repository/a1' && m.Source.endsWith('/m-133')));
    assert.ok(info.Mounts.every((m) => m.RW === false));
    assert.deepEqual(Object.keys(info.HostConfig.PortBindings ?? {}), ['8000/tcp']);
  });

  it('DEPLOY_LOAD, DEPLOY_UNLOAD and TERMINATE drive Triton through the repository extension', async () => {
    await assertLoadUnloadTerminate(t, requests.slice(1, 4));
    assert.deepEqual(await instanceContainers(t.docker, t.instance), []);
  });

  it('TEMP runs ds-550 through its infer calls and reports the accuracy training measured', async () => {
    await assertTempAsTrained(t, requests[4]!, 'm-133');
    assert.deepEqual(await instanceContainers(t.docker, t.instance), []);
  });
});
