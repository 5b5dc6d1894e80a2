/**
 * The engine is touched only as documented. A recording proxy sits between a real router
 * (`modeldock start`, DOCKER_HOST pointed at the proxy) and the Docker engine through a
 * full round: warm pool, the five original requests (TEMP among them), inference, idle
 * unload, a worker killed behind the router's back and restarted by the reconciler, and a
 * router restart. Then every recorded call must be in the allow-list of
 * src/runtime/docker/engine-calls.ts, no mutating call may touch a container without
 * this instance's labels, and every container it created must be hardened.
 */
import assert from 'node:assert/strict';
import Dockerode from 'dockerode';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { engineCallOf } from '../../src/runtime/docker/engine-calls.js';
import { LABELS } from '../../src/runtime/runtime.js';
import { startDockerProxy, type DockerProxy, type RecordedCall } from '../helpers/docker-proxy.js';
import { DIGITS, ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { DATASETS_DIR, MODELS_DIR, WORKER_IMAGE } from '../helpers/paths.js';
import { spawnRouter, type RouterProcess } from '../helpers/router-process.js';
import { bearer, postJson, removeInstanceContainers, uniqueInstance } from '../helpers/router.js';

const KEY = 'engine-calls-admin-key-0123456789';
const docker = new Dockerode();

interface StreamedOperation {
  type: string;
  reason: string;
  status: string;
  job_id: string;
}

/**
 * Subscribes to /v1/events; `next` resolves with the first operation event that matches.
 * Resolves once the stream is open, so nothing that happens afterwards is missed.
 */
async function watchOperations(url: string) {
  const response = await fetch(`${url}/v1/events`, { headers: bearer(KEY) });
  const reader = response.body!.getReader();
  let text = '';
  const seen: StreamedOperation[] = [];
  return {
    async next(matches: (op: StreamedOperation) => boolean): Promise<StreamedOperation> {
      for (;;) {
        const found = seen.find(matches);
        if (found) return found;
        const { value, done } = await reader.read();
        if (done) throw new Error('event stream ended');
        text += Buffer.from(value).toString();
        const frames = text.split('\n\n');
        text = frames.pop()!;
        for (const frame of frames) {
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (frame.startsWith('event: operation') && data) seen.push(JSON.parse(data).operation);
        }
      }
    },
    close: () => reader.cancel().catch(() => undefined),
  };
}

describe('engine calls through a recording proxy', () => {
  const instance = uniqueInstance('eng');
  let proxy: DockerProxy;
  let dir: string;
  let router: RouterProcess | undefined;
  const env = () => ({
    DOCKER_HOST: proxy.dockerHost,
    MODELDOCK_RUNTIME: 'docker',
    MODELDOCK_INSTANCE: instance,
    MODELDOCK_DATABASE: `sqlite:${path.join(dir, 'modeldock.db')}`,
    MODELDOCK_MODELS_DIR: MODELS_DIR,
    MODELDOCK_DATASETS_DIR: DATASETS_DIR,
    MODELDOCK_WORKER_IMAGE: WORKER_IMAGE,
    MODELDOCK_WORKER_MEMORY: '1g',
    MODELDOCK_WARM_POOL: '1',
    MODELDOCK_IDLE_UNLOAD_SECONDS: '1',
    MODELDOCK_RECONCILE_INTERVAL_MS: '1000',
    MODELDOCK_RESTART_BACKOFF_MS: '100',
    MODELDOCK_API_KEY: KEY,
    MODELDOCK_LOG_LEVEL: 'info',
  });

  before(async () => {
    proxy = await startDockerProxy();
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-engine-calls-'));
  });
  after(async () => {
    await router?.kill('SIGTERM');
    await removeInstanceContainers(docker, instance);
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a full round through the proxy', async () => {
    router = await spawnRouter(env(), path.join(dir, 'router.log'));
    for (const body of ORIGIN_REQUESTS) {
      const answer = await postJson(`${router.url}/inference_router/`, body, bearer(KEY));
      assert.equal(answer.status, 200, JSON.stringify(answer.body).slice(0, 300));
    }
    const created = await postJson(
      `${router.url}/v1/jobs`,
      { job_id: 'e1', model: 'm-131', dataset: 'ds-550' },
      bearer(KEY),
    );
    assert.equal(created.status, 201);
    const events = await watchOperations(router.url);
    const inferBody = {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
    };
    assert.equal((await postJson(`${router.url}/v2/models/e1/infer`, inferBody, bearer(KEY))).status, 200);
    await events.next((op) => op.job_id === 'e1' && op.reason === 'idle_timeout');
    // Inference brings it back; then the worker dies behind the router's back.
    assert.equal((await postJson(`${router.url}/v2/models/e1/infer`, inferBody, bearer(KEY))).status, 200);
    await docker.getContainer(created.body.server.container_id).kill();
    await events.next((op) => op.job_id === 'e1' && op.reason === 'restart' && op.status === 'succeeded');
    await events.close();

    // Router restart on the same state: it adopts its workers.
    await router.kill('SIGTERM');
    router = await spawnRouter(env(), path.join(dir, 'router.log'));
    assert.equal((await postJson(`${router.url}/v2/models/e1/infer`, inferBody, bearer(KEY))).status, 200);
    assert.equal((await postJson(`${router.url}/v1/jobs/e1/terminate`, {}, bearer(KEY))).status, 200);
    assert.equal((await postJson(`${router.url}/v1/reconcile`, {}, bearer(KEY))).status, 200);
    await router.kill('SIGTERM');
    router = undefined;
    assert.ok(proxy.calls.length > 0, 'the router used the proxy');
  });

  it('made only allow-listed calls', () => {
    const outside = proxy.calls.filter((call) => !engineCallOf(call.method, call.path));
    assert.deepEqual(
      outside.map((c) => `${c.method} ${c.path}`),
      [],
      'calls outside src/runtime/docker/engine-calls.ts',
    );
    const used = new Set(proxy.calls.map((call) => engineCallOf(call.method, call.path)!.path));
    for (const path of [
      '/containers/create',
      '/containers/{id}/start',
      '/containers/{id}/rename',
      '/events',
    ]) {
      assert.ok(used.has(path), `the round exercised ${path}`);
    }
  });

  it('touched only containers of this instance', () => {
    const mutating = proxy.calls.filter((call) => engineCallOf(call.method, call.path)?.mutating);
    assert.ok(mutating.length > 10);
    const ours = (labels: Record<string, string> | null | undefined) =>
      labels?.[LABELS.managed] === 'true' && labels[LABELS.instance] === instance;
    for (const call of mutating) {
      if (call.path.endsWith('/containers/create')) {
        assert.ok(ours((call.body as { Labels: Record<string, string> }).Labels), `create ${call.query}`);
      } else if (call.targetLabels !== undefined) {
        // null: already gone (an idempotent remove of a removed container) — nothing touched.
        assert.ok(call.targetLabels === null || ours(call.targetLabels), `${call.method} ${call.path}`);
      }
    }
  });

  it('created only hardened containers', () => {
    const creates = proxy.calls.filter((call) => call.path.endsWith('/containers/create'));
    // Pool workers, the create and TEMP of the round, refills after each take.
    assert.ok(creates.length >= 3, `${creates.length} creates`);
    for (const call of creates) assertHardened(call);
  });
});

function assertHardened(call: RecordedCall): void {
  const body = call.body as {
    User?: string;
    HostConfig: {
      CapDrop?: string[];
      CapAdd?: string[];
      SecurityOpt?: string[];
      ReadonlyRootfs?: boolean;
      Privileged?: boolean;
      Memory?: number;
      NanoCpus?: number;
      CpuQuota?: number;
      PidsLimit?: number;
      NetworkMode?: string;
      PidMode?: string;
      IpcMode?: string;
      UsernsMode?: string;
      Binds?: string[];
      Mounts?: { Type: string; Source: string; Target: string; ReadOnly?: boolean }[];
      Devices?: unknown[];
    };
  };
  const host = body.HostConfig;
  const what = `create ${call.query}`;
  assert.deepEqual(host.CapDrop, ['ALL'], what);
  assert.ok(!host.CapAdd?.length, what);
  assert.ok(host.SecurityOpt?.includes('no-new-privileges'), what);
  assert.equal(host.ReadonlyRootfs, true, what);
  assert.ok(!host.Privileged, what);
  const user = body.User ?? '';
  assert.ok(user !== '' && !/^(0|root)(:|$)/.test(user), `${what}: non-root user, got "${user}"`);
  assert.ok((host.Memory ?? 0) > 0, `${what}: memory limit`);
  assert.ok((host.NanoCpus ?? 0) > 0 || (host.CpuQuota ?? 0) > 0, `${what}: CPU limit`);
  assert.ok((host.PidsLimit ?? 0) > 0, `${what}: pids limit`);
  for (const mode of [host.NetworkMode, host.PidMode, host.IpcMode, host.UsernsMode]) {
    assert.notEqual(mode, 'host', `${what}: no host namespace`);
  }
  assert.ok(!host.Devices?.length, what);
  assert.ok(!host.Binds?.length, `${what}: no Binds`);
  for (const mount of host.Mounts ?? []) {
    assert.ok(!mount.Source.includes('docker.sock'), `${what}: no Docker socket`);
    if (mount.Type === 'bind') {
      assert.ok([MODELS_DIR, DATASETS_DIR].includes(mount.Source), `${what}: host path ${mount.Source}`);
      assert.equal(mount.ReadOnly, true, `${what}: ${mount.Source} read-only`);
    }
  }
}
