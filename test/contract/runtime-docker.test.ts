import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { DockerEngine, isStaleTaskError } from '../../src/runtime/docker/docker-engine.js';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';
import { LABELS } from '../../src/runtime/runtime.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { DATASETS_DIR, MODELS_DIR, WORKER_IMAGE } from '../helpers/paths.js';
import { removeInstanceContainers, uniqueInstance } from '../helpers/router.js';
import { runRuntimeContract } from './runtime.contract.js';

const docker = new Dockerode();

runRuntimeContract('docker', {
  make: async (instance) =>
    new DockerRuntime({
      docker,
      instance,
      image: WORKER_IMAGE,
      modelsDir: MODELS_DIR,
      datasetsDir: DATASETS_DIR,
    }),
  killExternally: async (_runtime, name) => {
    await docker.getContainer(name).kill({ signal: 'SIGKILL' });
  },
  cleanup: async (instances) => {
    for (const instance of instances) await removeInstanceContainers(docker, instance);
  },
});

describe('Docker: a container the engine cannot start again', () => {
  const instance = uniqueInstance('recreate');
  const runtime = new DockerRuntime({
    docker,
    instance,
    image: WORKER_IMAGE,
    modelsDir: MODELS_DIR,
    datasetsDir: DATASETS_DIR,
  });
  const engine = new DockerEngine(docker);
  const workers = new WorkerClient({ secretOf: (endpoint) => runtime.workerSecret(endpoint) });
  after(async () => {
    await workers.close();
    await removeInstanceContainers(docker, instance);
  });

  it('is recreated identically under its name (after an engine restart left a task of it behind)', async () => {
    const name = `${instance}-inf-0001`;
    const limits = { memoryBytes: 512 * 1024 * 1024, nanoCpus: 1e9, pids: 256 };
    const created = await runtime.create({ name, labels: { [LABELS.job]: 'r1' }, limits });
    const first = await runtime.start(name);
    await workers.waitUntilReady(first.endpoint!, { timeoutMs: 30_000 });
    await runtime.stop(name, { timeoutSeconds: 5 });
    const before = await docker.getContainer(created.id).inspect();

    const id = await engine.recreate(created.id);
    assert.notEqual(id, created.id, 'a new container');
    await assert.rejects(
      docker.getContainer(created.id).inspect(),
      /no such container/i,
      'the old one is gone',
    );
    const after = await docker.getContainer(id).inspect();
    assert.equal(after.Name, `/${name}`);
    assert.deepEqual(after.Config.Labels, before.Config.Labels);
    assert.deepEqual(after.Config.Env, before.Config.Env, 'the same environment, worker secret included');
    assert.equal(after.Config.Image, before.Config.Image);
    assert.deepEqual(
      after.HostConfig,
      { ...before.HostConfig },
      'the same host configuration (hardening, limits)',
    );
    assert.notEqual(after.Config.Hostname, before.Config.Hostname, 'its own hostname');

    // The runtime finds it by name and starts it; the worker obeys the same secret.
    const started = await runtime.start(name);
    assert.equal(started.id, id);
    await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
    const index = await workers.index(started.endpoint!);
    assert.ok(
      index.some((m: { name: string }) => m.name === 'm-131'),
      'it answers its router and sees the store',
    );
  });

  it('is recognised by the answer the engine gives to its start', () => {
    // As dockerd 20.10 answers (its log: "Handler for POST /containers/…/start returned error").
    const stale = Object.assign(new Error('(HTTP code 500) server error'), {
      statusCode: 500,
      json: { message: `task ${'b4b45a21852f'.padEnd(64, '0')}: already exists` },
    });
    assert.equal(isStaleTaskError(stale), true);
    const other = Object.assign(new Error('(HTTP code 500) server error'), {
      statusCode: 500,
      json: { message: 'failed to update store for object type *libnetwork.endpoint: open : no such file' },
    });
    assert.equal(isStaleTaskError(other), false);
    assert.equal(
      isStaleTaskError(Object.assign(new Error('x'), { statusCode: 409, json: stale.json })),
      false,
    );
  });
});
