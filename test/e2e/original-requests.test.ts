/**
 * The five requests of the original POC README, sent verbatim (bodies byte for byte)
 * to a real router driving real containers on the real engine.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import {
  getJson,
  instanceContainers,
  postJson,
  startTestRouter,
  type TestRouter,
} from '../helpers/router.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';

const [create, load, unload, terminate, temp] = ORIGIN_REQUESTS;

describe('the original README requests, verbatim', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter();
  });
  after(async () => {
    await t?.cleanup();
  });

  it('1-1 DEPLOY_CREATE creates one labelled, hardened, ready container for job a1', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, create);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.job_id, 'a1');
    assert.equal(body.state, 'ready');
    assert.equal(body.server_id, 'inf-0001');
    assert.equal(body.container_name, `${t.instance}-inf-0001`);
    assert.match(body.warnings.join('\n'), /container_id "aa" .*ignored/);
    assert.deepEqual(
      body.steps.map((s: { name: string }) => s.name),
      ['record', 'create', 'start', 'wait_ready', 'load'],
    );

    const containers = await instanceContainers(t.docker, t.instance);
    assert.equal(containers.length, 1);
    const info = await t.docker.getContainer(containers[0]!.Id).inspect();
    assert.equal(info.Id, body.container_id);
    assert.equal(info.State.Running, true);
    assert.equal(info.Config.Labels[LABELS.managed], 'true');
    assert.equal(info.Config.Labels[LABELS.server], 'inf-0001');
    assert.equal(info.Config.Labels[LABELS.job], 'a1');
    assert.equal(info.Config.Labels[LABELS.model], 'm-131');
    // Hardened as DESIGN.md says.
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
  });

  it('1-2 DEPLOY_LOAD with a made-up container_id acts on the job server and reports the id', async () => {
    const before = await instanceContainers(t.docker, t.instance);
    const { status, body } = await postJson(`${t.url}/inference_router/`, load);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'ready');
    assert.equal(body.server_id, 'inf-0001');
    assert.match(body.warnings.join('\n'), /1cfed7648adeede5.*ignored/);
    const afterList = await instanceContainers(t.docker, t.instance);
    assert.deepEqual(
      afterList.map((c) => c.Id),
      before.map((c) => c.Id),
      'no container created or removed',
    );
  });

  it('1-3 DEPLOY_UNLOAD releases the model and keeps the container', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, unload);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'unloaded');
    const info = await t.docker.getContainer(body.container_id).inspect();
    assert.equal(info.State.Running, true, 'the container stays up for a fast reload');
    const server = await getJson(`${t.url}/v1/servers/inf-0001`);
    // Through the router's client: the worker answers only holders of its secret.
    const index = { body: await t.router.workers.index(server.body.endpoint!) };
    assert.equal(
      index.body.some((m: { name: string; state: string }) => m.name === 'a1' && m.state === 'READY'),
      false,
      'the worker no longer holds the model',
    );
  });

  it('1-4 TERMINATE removes the container and keeps the record as history', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, terminate);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.state, 'terminated');
    assert.equal((await instanceContainers(t.docker, t.instance)).length, 0);
    const server = await getJson(`${t.url}/v1/servers/inf-0001`);
    assert.equal(server.body.state, 'terminated');
    assert.ok(server.body.terminated_at);
  });

  it('1-5 TEMP runs m-131 over ds-550, returns the predictions and leaves no container', async () => {
    const { status, body } = await postJson(`${t.url}/inference_router/`, temp);
    assert.equal(status, 200, JSON.stringify(body).slice(0, 500));
    assert.equal(body.operation_type, 'TEMP');
    assert.equal(body.state, 'terminated');
    assert.ok(body.result.count > 0);
    assert.equal(body.result.predictions.length, body.result.count);
    assert.ok(body.result.accuracy > 0.9, `accuracy ${body.result.accuracy}`);
    assert.match(body.warnings.join('\n'), /container_id "ASDF"/);
    assert.deepEqual(
      body.steps.map((s: { name: string }) => s.name),
      ['record', 'create', 'start', 'wait_ready', 'load', 'infer', 'remove'],
    );
    assert.equal((await instanceContainers(t.docker, t.instance)).length, 0);
    const ops = await getJson(`${t.url}/v1/operations?job_id=a1`);
    assert.deepEqual(
      ops.body.operations.map((o: { type: string; status: string }) => `${o.type}:${o.status}`),
      [
        'TEMP:succeeded',
        'TERMINATE:succeeded',
        'DEPLOY_UNLOAD:succeeded',
        'DEPLOY_LOAD:succeeded',
        'DEPLOY_CREATE:succeeded',
      ],
    );
  });
});
