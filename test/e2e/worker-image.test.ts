/**
 * The worker image on the real engine, run as modeldock runs it (non-root, read-only
 * root filesystem, all capabilities dropped, stores mounted read-only, limits): it
 * serves m-131 correctly, loading then unloading a 256 MiB model moves the
 * container's memory as `docker stats` reports it, and the worker accounts each load by
 * its container's cgroup (memory-meter.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Dockerode from 'dockerode';
import { after, before, describe, it } from 'node:test';
import { buildImage } from '../../src/runtime/docker/image-builder.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { WORKER_ALLOCATOR_ENV } from '../../src/worker-limits.js';
import { ensureBigModel, TEST_MODELS_DIR } from '../helpers/models.js';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT, WORKER_IMAGE } from '../helpers/paths.js';
import { DIGITS } from '../helpers/fixtures.js';

const docker = new Dockerode();
const IMAGE = WORKER_IMAGE;
const MiB = 1024 * 1024;
const PACKAGE_VERSION = (
  JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
const created: Dockerode.Container[] = [];

/** Every container this file created, and any left by an earlier interrupted run. */
async function removeTestContainers(): Promise<void> {
  const leftovers = await docker.listContainers({
    all: true,
    filters: { label: ['modeldock.test=worker'] },
  });
  const all = [...created, ...leftovers.map((c) => docker.getContainer(c.Id))];
  await Promise.all(all.map((c) => c.remove({ force: true }).catch(() => undefined)));
  created.length = 0;
}

async function runWorker(name: string, modelsDir: string) {
  await docker
    .getContainer(name)
    .remove({ force: true })
    .catch(() => undefined);
  const container = await docker.createContainer({
    name,
    // Each worker logs its requests' outcomes; only errors matter here. The allocator
    // setting is the one modeldock gives its workers (worker-spec.ts).
    Env: ['MODELDOCK_LOG_LEVEL=warn', ...Object.entries(WORKER_ALLOCATOR_ENV).map(([k, v]) => `${k}=${v}`)],
    Image: IMAGE,
    Labels: { 'modeldock.test': 'worker' },
    User: '10001:10001',
    ExposedPorts: { '8000/tcp': {} },
    HostConfig: {
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Memory: 1536 * MiB,
      PidsLimit: 128,
      Init: true,
      Mounts: [
        { Type: 'bind', Source: modelsDir, Target: '/models', ReadOnly: true },
        { Type: 'bind', Source: DATASETS_DIR, Target: '/datasets', ReadOnly: true },
      ],
      PortBindings: { '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  created.push(container); // removed in after(), even when start fails
  await container.start();
  const info = await container.inspect();
  const port = info.NetworkSettings.Ports['8000/tcp']![0]!.HostPort;
  return { container, endpoint: `http://127.0.0.1:${port}` };
}

/** Container memory as `docker stats` shows it: usage minus page cache. */
async function memoryUsage(container: Dockerode.Container): Promise<number> {
  const stats = (await container.stats({ stream: false })) as unknown as {
    memory_stats: { usage: number; stats: Record<string, number> };
  };
  const s = stats.memory_stats.stats;
  return stats.memory_stats.usage - (s.inactive_file ?? s.total_inactive_file ?? s.cache ?? 0);
}

describe('worker image on the engine', () => {
  const workers = new WorkerClient();
  before(async () => {
    await removeTestContainers();
    // Built from the current sources every time (about a second with the layer cache),
    // so the test never passes on a stale image.
    await buildImage(docker, 'worker', IMAGE);
  });
  after(async () => {
    await workers.close();
    await removeTestContainers();
  });

  it('runs hardened and classifies ds-550 as stated', async () => {
    const { container, endpoint } = await runWorker(`modeldock-test-worker-${process.pid}`, MODELS_DIR);
    await workers.waitUntilReady(endpoint, { timeoutMs: 30_000 });
    const info = await container.inspect();
    assert.equal(info.Config.User, '10001:10001');
    assert.equal(info.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
    assert.ok(
      info.Mounts.every((m) => m.RW === false),
      'stores mounted read-only',
    );

    const server = (await (await fetch(`${endpoint}/v2`)).json()) as { version: string };
    assert.equal(server.version, PACKAGE_VERSION, 'the bundle reports the project version');

    await workers.load(endpoint, 'digits', 'm-131');
    assert.deepEqual((await workers.stats(endpoint)).loaded, ['digits']);
    // The first ten digits of ds-550, which m-131 all recognises.
    const sample = DIGITS.slice(0, 10);
    const answer = (await workers.infer(endpoint, 'digits', {
      id: 'e2e',
      inputs: [
        { name: 'pixels', shape: [10, 64], datatype: 'FP32', data: sample.map((r) => r.inputs.pixels) },
      ],
      outputs: [{ name: 'label' }],
    })) as { id: string; model_name: string; outputs: { name: string; datatype: string; data: number[] }[] };
    assert.equal(answer.id, 'e2e');
    assert.equal(answer.model_name, 'digits');
    assert.deepEqual(answer.outputs[0]!.datatype, 'INT64');
    assert.deepEqual(
      answer.outputs[0]!.data,
      sample.map((r) => r.label),
    );
    const batch = await workers.batch(endpoint, 'digits', 'ds-550');
    assert.equal(batch.count, 550);
    assert.equal((batch as unknown as { correct: number }).correct, 527);
    await workers.unload(endpoint, 'digits');
    assert.equal(await workers.isLoaded(endpoint, 'digits'), false);
  });

  it('loading a 256 MiB model raises container memory, unloading gives it back', async () => {
    const id = await ensureBigModel(256);
    const { container, endpoint } = await runWorker(
      `modeldock-test-worker-mem-${process.pid}`,
      TEST_MODELS_DIR,
    );
    await workers.waitUntilReady(endpoint, { timeoutMs: 30_000 });
    const idle = await memoryUsage(container);
    const idleRss = (await workers.stats(endpoint)).rss_bytes;
    await workers.load(endpoint, 'big', id);
    const loaded = await memoryUsage(container);
    const loadedRss = (await workers.stats(endpoint)).rss_bytes;
    await workers.unload(endpoint, 'big');
    const unloaded = await memoryUsage(container);
    const unloadedRss = (await workers.stats(endpoint)).rss_bytes;
    console.log(
      `# container memory: idle ${Math.round(idle / MiB)} MiB, loaded ${Math.round(loaded / MiB)} MiB, unloaded ${Math.round(unloaded / MiB)} MiB; ` +
        `worker rss: ${Math.round(idleRss / MiB)}, ${Math.round(loadedRss / MiB)}, ${Math.round(unloadedRss / MiB)} MiB`,
    );
    assert.ok(loaded - idle > 200 * MiB, `load added ${Math.round((loaded - idle) / MiB)} MiB`);
    // The worker's own view (what the router's memory policy reads) agrees.
    assert.ok(loadedRss - idleRss > 200 * MiB, `rss rose by ${Math.round((loadedRss - idleRss) / MiB)} MiB`);
    // Roughly the model's size: one copy of the weights, not the file and a copy of it.
    // (Measured on rss: the container's figure also moves with the model file's page
    // cache, which depends on what else read the file before.)
    assert.ok(loadedRss - idleRss < 400 * MiB, `rss rose by ${Math.round((loadedRss - idleRss) / MiB)} MiB`);
    assert.ok(
      loadedRss - unloadedRss > 200 * MiB,
      `rss fell by ${Math.round((loadedRss - unloadedRss) / MiB)} MiB`,
    );
    assert.ok(loaded - unloaded > 200 * MiB, `unload released ${Math.round((loaded - unloaded) / MiB)} MiB`);
  });

  it("accounts each load by its container's cgroup: bigger measures bigger, unloading gives it back", async () => {
    const small = await ensureBigModel(16);
    const large = await ensureBigModel(64);
    const { container, endpoint } = await runWorker(
      `modeldock-test-worker-meter-${process.pid}`,
      TEST_MODELS_DIR,
    );
    await workers.waitUntilReady(endpoint, { timeoutMs: 30_000 });
    const idle = await workers.stats(endpoint);
    assert.equal(idle.memory_source, 'cgroup', 'a container is a cgroup of its own');
    assert.equal(idle.memory_limit_bytes, 1536 * MiB, "its limit is the container's");
    const s = await workers.load(endpoint, 's', small);
    const l = await workers.load(endpoint, 'l', large);
    const docker = await memoryUsage(container);
    console.log(
      `# cgroup-measured: 16 MiB model ${((s.memoryBytes ?? 0) / MiB).toFixed(1)} MiB, 64 MiB model ${((l.memoryBytes ?? 0) / MiB).toFixed(1)} MiB; ` +
        `worker ${((l.workerMemoryBytes ?? 0) / MiB).toFixed(1)} MiB, docker stats ${(docker / MiB).toFixed(1)} MiB`,
    );
    for (const [measured, weights] of [
      [s.memoryBytes, 16 * MiB],
      [l.memoryBytes, 64 * MiB],
    ] as const) {
      assert.ok(
        measured !== null && measured > weights * 0.75 && measured < weights * 1.25,
        `${weights / MiB} MiB of weights measured ${((measured ?? 0) / MiB).toFixed(1)} MiB`,
      );
    }
    // The worker's figure is the container's as docker stats counts it (usage less inactive file).
    assert.ok(Math.abs(l.workerMemoryBytes! - docker) < 16 * MiB, 'the worker and docker stats agree');
    await workers.unload(endpoint, 'l');
    const after = await workers.stats(endpoint);
    assert.ok(
      l.workerMemoryBytes! - after.memory_bytes! > l.memoryBytes! * 0.75,
      `unloading gave back ${((l.workerMemoryBytes! - after.memory_bytes!) / MiB).toFixed(1)} MiB`,
    );
    assert.deepEqual(Object.keys(after.model_memory_bytes ?? {}), ['s']);
  });
});
