/**
 * A worker collects its garbage in full after unloads (src/worker/heap-compaction.ts):
 * once the unloads pause, at the latest a while after the first one under churn, never
 * in the middle of a load's measurement (model-registry.ts), and a name unloaded leaves
 * no statistics behind. Without these a shared worker's measured memory grew by tens of
 * KiB with every load and unload (docs/worker.md#the-heap-after-unloads).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { buildWorkerApp } from '../../src/worker/app.js';
import { HeapCompaction } from '../../src/worker/heap-compaction.js';
import type { MemoryMeter } from '../../src/worker/memory-meter.js';
import { ModelRegistry } from '../../src/worker/model-registry.js';
import { ModelStore } from '../../src/worker/model-store.js';
import { workerSpec } from '../../src/lifecycle/worker-spec.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';

describe('worker: heap compaction after unloads', () => {
  afterEach(() => mock.timers.reset());

  it('collects once the unloads pause, and by the deadline when they keep coming', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    let collections = 0;
    const compaction = new HeapCompaction(() => collections++, { quietMs: 100, maxDelayMs: 1_000 });
    compaction.unloaded();
    mock.timers.tick(99);
    assert.equal(collections, 0, 'not before the pause');
    mock.timers.tick(1);
    assert.equal(collections, 1, 'once the unloads paused');
    mock.timers.tick(5_000);
    assert.equal(collections, 1, 'nothing more without unloads');

    // An unload every 50 ms never pauses: collected at the deadline, then again a deadline later.
    for (let t = 0; t < 2_000; t += 50) {
      compaction.unloaded();
      mock.timers.tick(50);
    }
    assert.equal(collections, 3);
    compaction.close();
    mock.timers.tick(5_000);
    assert.equal(collections, 3, 'a closed compaction collects nothing');
  });

  it('collects between measured loads, not inside one', async () => {
    const events: string[] = [];
    let bytes = 100e6;
    const meter: MemoryMeter = {
      read: async () => {
        events.push('read');
        // Load b's first reading is slow: the collection comes due (200 ms) inside its measurement.
        if (events.filter((e) => e === 'read').length === 3) await new Promise((r) => setTimeout(r, 400));
        return { bytes, limitBytes: null, source: 'rss' };
      },
    };
    let collected!: () => void;
    const collection = new Promise<void>((resolve) => (collected = resolve));
    const registry = new ModelRegistry(new ModelStore(MODELS_DIR, 1), meter, () => {
      events.push('gc');
      bytes -= 1e6;
      collected();
    });
    try {
      await registry.load('a', 'm-131');
      await registry.unload('a');
      // A load started while the collection is pending is measured whole, before or after it.
      // (The collection's timers do not hold the process open; this one does meanwhile.)
      const open = setTimeout(() => undefined, 10_000);
      await Promise.all([registry.load('b', 'm-131'), collection]).finally(() => clearTimeout(open));
      const reads = events.map((e, i) => [e, i] as const).filter(([e]) => e === 'read');
      const gc = events.indexOf('gc');
      assert.ok(gc >= 0, 'collected after the unload');
      assert.equal(reads.length, 4);
      assert.ok(gc < reads[2]![1] || gc > reads[3]![1], `gc inside a measurement: ${events.join(' ')}`);
    } finally {
      await registry.close();
    }
  });

  it('forgets a name’s statistics when it is unloaded', async () => {
    const worker = await buildWorkerApp({ modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR });
    try {
      const load = () =>
        worker.app.inject({
          method: 'POST',
          url: '/v2/repository/models/j1/load',
          payload: { parameters: { model_id: 'm-131' } },
        });
      const stats = async () =>
        (await worker.app.inject({ method: 'GET', url: '/v2/models/j1/stats' })).json().model_stats[0];
      assert.equal((await load()).statusCode, 200);
      const input = {
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: Array(64).fill(1) }],
      };
      const infer = await worker.app.inject({ method: 'POST', url: '/v2/models/j1/infer', payload: input });
      assert.equal(infer.statusCode, 200, infer.body);
      assert.equal((await stats()).inference_stats.success.count, 1);
      const unload = await worker.app.inject({ method: 'POST', url: '/v2/repository/models/j1/unload' });
      assert.equal(unload.statusCode, 200);
      assert.equal((await load()).statusCode, 200);
      const fresh = await stats();
      assert.equal(fresh.inference_stats.success.count, 0, 'the unloaded name’s figures are gone');
      assert.equal(fresh.execution_count, 0);
    } finally {
      await worker.app.close();
    }
  });

  it('starts every modeldock worker with the flags that let it collect and keep its young generation small', () => {
    const spec = workerSpec('w', {}, { memoryBytes: 1024 ** 3, nanoCpus: 1e9, pids: 128 });
    const flags = spec.env?.NODE_OPTIONS?.split(' ') ?? [];
    assert.ok(flags.includes('--expose-gc'), spec.env?.NODE_OPTIONS);
    assert.ok(
      flags.some((f) => /^--max-semi-space-size=\d+$/.test(f)),
      spec.env?.NODE_OPTIONS,
    );
  });
});
