/**
 * How the router recognises its workers at the store endpoint (api/worker-callers.ts):
 * by their secret, among the workers its runtime lists as running; a worker that started
 * after the last look is let in (an unknown secret makes it look again), strangers share
 * one look at a time, and a worker that is gone or not running is not let in. The
 * runtime here is a list in memory: what it lists is the real runtimes' business.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerCallers } from '../../src/api/worker-callers.js';
import type { Runtime, WorkerInfo } from '../../src/runtime/runtime.js';

function listedRuntime(workers: { name: string; secret: string; running?: boolean }[]) {
  const calls = { list: 0 };
  const endpoint = (name: string) => `http://${name}:8000`;
  const runtime = {
    list: async () => {
      calls.list += 1;
      return workers.map(
        (w) => ({ name: w.name, running: w.running ?? true, endpoint: endpoint(w.name) }) as WorkerInfo,
      );
    },
    workerSecret: (at: string) => workers.find((w) => endpoint(w.name) === at)?.secret,
  } as unknown as Runtime;
  return { runtime, calls, workers };
}

describe('the store endpoint recognises the router’s workers by their secret', () => {
  it('names the running worker a secret belongs to, and nobody for anything else', async () => {
    const { runtime } = listedRuntime([
      { name: 'w1', secret: 'secret-one-0123456789' },
      { name: 'w2', secret: 'secret-two-0123456789', running: false },
    ]);
    const callers = new WorkerCallers(runtime);
    assert.equal(await callers.identify('secret-one-0123456789'), 'w1');
    assert.equal(await callers.identify('secret-two-0123456789'), undefined, 'not running');
    assert.equal(await callers.identify('nobody-0123456789'), undefined);
    assert.equal(await callers.identify(undefined), undefined);
    assert.equal(await callers.identify(''), undefined);
    assert.equal(await callers.identify(['secret-one-0123456789']), undefined, 'one header, not several');
  });

  it('lets in a worker started after the last look; strangers share one look at a time', async () => {
    const { runtime, calls, workers } = listedRuntime([{ name: 'w1', secret: 'secret-one-0123456789' }]);
    const callers = new WorkerCallers(runtime);
    assert.equal(await callers.identify('secret-one-0123456789'), 'w1');
    assert.equal(calls.list, 1);
    assert.equal(await callers.identify('secret-one-0123456789'), 'w1');
    assert.equal(calls.list, 1, 'a known secret needs no look');
    workers.push({ name: 'w3', secret: 'secret-three-0123456789' });
    assert.equal(await callers.identify('secret-three-0123456789'), 'w3');
    assert.equal(calls.list, 2);
    const strangers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => callers.identify(`stranger-${i}-0123456789`)),
    );
    assert.deepEqual(new Set(strangers), new Set([undefined]));
    assert.ok(calls.list <= 4, `20 strangers at once made ${calls.list - 2} looks`);
  });

  it('forgets a worker that is gone at the next look', async () => {
    const { runtime, workers } = listedRuntime([
      { name: 'w1', secret: 'secret-one-0123456789' },
      { name: 'w2', secret: 'secret-two-0123456789' },
    ]);
    const callers = new WorkerCallers(runtime);
    assert.equal(await callers.identify('secret-two-0123456789'), 'w2');
    workers.splice(1, 1);
    // Any miss makes it look again; the removed worker's secret is gone from what it knows.
    assert.equal(await callers.identify('stranger-0123456789'), undefined);
    assert.equal(await callers.identify('secret-two-0123456789'), undefined);
    assert.equal(await callers.identify('secret-one-0123456789'), 'w1');
  });
});
