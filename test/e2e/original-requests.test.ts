/**
 * The five requests of the original POC README, verbatim, to a real router driving real
 * containers on the real engine (the scenario: original-requests.scenario.ts).
 */
import assert from 'node:assert/strict';
import { LABELS } from '../../src/runtime/runtime.js';
import { instanceContainers, startTestRouter } from '../helpers/router.js';
import { runOriginalRequests } from './original-requests.scenario.js';

runOriginalRequests('Docker', {
  worker: 'container',
  start: () => startTestRouter(),
  stop: (t) => t.cleanup(),
  workerIds: async (t) => (await instanceContainers(t.docker, t.instance)).map((c) => c.Id),
  isRunning: async (t, answer) => (await t.docker.getContainer(answer.container_id).inspect()).State.Running,
  checkCreated: async (t, answer) => {
    const info = await t.docker.getContainer(answer.container_id).inspect();
    assert.equal(info.Name, `/${answer.container_name}`);
    assert.equal(info.State.Running, true);
    assert.equal(info.Config.Labels[LABELS.managed], 'true');
    assert.equal(info.Config.Labels[LABELS.server], 'inf-0001');
    assert.equal(info.Config.Labels[LABELS.job], 'a1');
    assert.equal(info.Config.Labels[LABELS.model], 'm-131');
    // Hardened as docs/security.md says.
    assert.equal(info.Config.User, '10001:10001');
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.ok((info.HostConfig.Memory ?? 0) > 0);
    assert.ok((info.HostConfig.NanoCpus ?? 0) > 0);
    assert.ok((info.HostConfig.PidsLimit ?? 0) > 0);
    assert.ok(
      info.Mounts.every((m) => m.RW === false),
      'stores are mounted read-only',
    );
    assert.ok(!info.Mounts.some((m) => m.Source.includes('docker.sock')), 'no Docker socket');
    const binding = info.HostConfig.PortBindings?.['8000/tcp']?.[0];
    assert.equal(binding?.HostIp, '127.0.0.1');
  },
});
