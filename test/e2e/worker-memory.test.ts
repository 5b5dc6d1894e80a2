/**
 * Each load is accounted by what the worker's measured memory grew by (model-registry.ts
 * with memory-meter.ts), on the worker program started as the process runtime starts it
 * (its environment from workerSpec: the allocator setting included) and on real ONNX
 * models: a bigger model measures bigger, near its weights, loads started together are
 * measured apart, and unloading gives the memory back. Here the worker shares the test's
 * cgroup, so it measures its rss; in a container it measures its cgroup
 * (worker-image.test.ts).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { WorkerClient, type WorkerStats } from '../../src/runtime/worker-client.js';
import { ensureBigModel, TEST_MODELS_DIR } from '../helpers/models.js';
import { startSpecWorker } from '../helpers/worker-process.js';

const MiB = 1024 * 1024;

function assertNear(measured: number | null | undefined, weights: number, what: string): void {
  assert.ok(
    typeof measured === 'number' && measured > weights * 0.75 && measured < weights * 1.25,
    `${what} measured ${((measured ?? 0) / MiB).toFixed(1)} MiB`,
  );
}

describe('worker: memory measured per model', { timeout: 120_000 }, () => {
  const workers = new WorkerClient();
  let child: ChildProcess | undefined;
  let endpoint: string;
  let small: string;
  let large: string;
  before(async () => {
    small = await ensureBigModel(16);
    large = await ensureBigModel(64);
    ({ child, endpoint } = await startSpecWorker(workers, 'memory-test', TEST_MODELS_DIR));
  });
  after(async () => {
    await workers.close();
    child?.kill('SIGKILL');
  });

  const stats = () => workers.stats(endpoint) as Promise<WorkerStats>;
  const measured = async (name: string) =>
    (await workers.index(endpoint)).find((e) => e.name === name && e.state === 'READY')?.memory_bytes;

  it('a larger model measures larger, each near its weights; the load says so too', async () => {
    const s = await workers.load(endpoint, 's', small);
    const l = await workers.load(endpoint, 'l', large);
    console.log(
      `# measured: 16 MiB model ${((s.memoryBytes ?? 0) / MiB).toFixed(1)} MiB, 64 MiB model ${((l.memoryBytes ?? 0) / MiB).toFixed(1)} MiB`,
    );
    // One copy of the weights (not the file and a copy of it), give or take a quarter.
    assertNear(s.memoryBytes, 16 * MiB, '16 MiB model');
    assertNear(l.memoryBytes, 64 * MiB, '64 MiB model');
    assert.ok(l.memoryBytes! > 2 * s.memoryBytes!, 'four times the weights measure well over twice as much');
    // The repository index and the worker's stats say the same.
    assert.equal(await measured('s'), s.memoryBytes);
    assert.equal(await measured('l'), l.memoryBytes);
    const now = await stats();
    assert.equal(now.memory_source, 'rss', "a process in the test runner's cgroup measures its rss");
    assert.deepEqual(now.model_memory_bytes, { l: l.memoryBytes, s: s.memoryBytes });
    assert.ok(now.memory_bytes! >= l.memoryBytes! + s.memoryBytes!, 'the total holds both models');
    assert.equal(l.workerMemoryBytes! >= l.memoryBytes! + s.memoryBytes!, true);
  });

  it('unloading gives the measured memory back', async () => {
    const l = (await measured('l'))!;
    const before = (await stats()).memory_bytes!;
    await workers.unload(endpoint, 'l');
    const afterUnload = await stats();
    const back = before - afterUnload.memory_bytes!;
    console.log(`# unloading the 64 MiB model: ${(back / MiB).toFixed(1)} MiB back`);
    assert.ok(back > l * 0.75, `${(back / MiB).toFixed(1)} of ${(l / MiB).toFixed(1)} MiB back`);
    assert.deepEqual(Object.keys(afterUnload.model_memory_bytes!), ['s'], 'its figure goes with it');
  });

  it('loads started together are measured one at a time, each its own', async () => {
    const [a, b] = await Promise.all([
      workers.load(endpoint, 'a', large),
      workers.load(endpoint, 'b', small),
    ]);
    // Measured together, each would count the other's weights too.
    assertNear(a.memoryBytes, 64 * MiB, '64 MiB model loaded beside another');
    assertNear(b.memoryBytes, 16 * MiB, '16 MiB model loaded beside another');
  });
});
