/** The bounds on creations (src/lifecycle/creation-gate.ts), as pure logic. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QuotaExceededError } from '../../src/errors.js';
import { CreationGate } from '../../src/lifecycle/creation-gate.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('CreationGate', () => {
  it('runs at most `concurrency` at once, queues the next in order, refuses past the queue', async () => {
    const gate = new CreationGate({ maxServers: 100, concurrency: 2, queue: 2 }, async () => 0);
    const order: number[] = [];
    let running = 0;
    let most = 0;
    const holds = [deferred(), deferred(), deferred(), deferred()];
    const runs = holds.map((hold, i) =>
      gate.admit(async () => {
        running++;
        most = Math.max(most, running);
        order.push(i);
        await hold.promise;
        running--;
        return i;
      }),
    );
    await assert.rejects(
      gate.admit(async () => 'never'),
      (error: unknown) => {
        assert.ok(error instanceof QuotaExceededError);
        assert.match(error.message, /MODELDOCK_CREATE_QUEUE/);
        return true;
      },
    );
    assert.deepEqual(await gate.status(), {
      maxServers: 100,
      concurrency: 2,
      queue: 2,
      liveServers: 0,
      creating: 2,
      queued: 2,
    });
    for (const hold of holds) hold.resolve();
    assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3]);
    assert.deepEqual(order, [0, 1, 2, 3]);
    assert.equal(most, 2);
    assert.equal((await gate.status()).creating, 0);
  });

  it('frees the slot of a creation that fails', async () => {
    const gate = new CreationGate({ maxServers: 100, concurrency: 1, queue: 0 }, async () => 0);
    await assert.rejects(
      gate.admit(async () => {
        throw new Error('engine said no');
      }),
      /engine said no/,
    );
    assert.equal(await gate.admit(async () => 'next'), 'next');
  });

  it('never lets concurrent records overshoot maxServers', async () => {
    let live = 0;
    const gate = new CreationGate({ maxServers: 3, concurrency: 10, queue: 10 }, async () => live);
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () =>
        gate.record(async () => {
          await new Promise((resolve) => setImmediate(resolve));
          live++;
        }),
      ),
    );
    assert.equal(live, 3);
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 3);
    for (const r of refused) {
      assert.ok(r.reason instanceof QuotaExceededError);
      assert.match(r.reason.message, /MODELDOCK_MAX_SERVERS=3/);
    }
  });
});
