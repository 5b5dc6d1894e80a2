/**
 * The dynamic batcher's queue logic (src/worker/batcher.ts) without a model: `execute`
 * is a function the test finishes by hand, and the adaptive wait reads a clock the test
 * moves. What runs together, in what order, what waits and for how long, what leaves.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher, CancelledError, type BatchPolicy } from '../../src/worker/batcher.js';
import { TooManyRequestsError } from '../../src/errors.js';

interface Call {
  items: string[];
  finish: (error?: Error) => void;
}

/** A batcher whose executions the test ends itself; results are the items upper-cased. */
function harness(policy: Partial<BatchPolicy> = {}, clock?: { now: number }) {
  const calls: Call[] = [];
  const waiters: (() => void)[] = [];
  const batcher = new Batcher<string, string>(
    {
      maxBatchSize: 8,
      preferredBatchSizes: [],
      maxQueueDelayMs: 0,
      adaptive: true,
      maxQueueSize: 0,
      ...policy,
    },
    (items) =>
      new Promise<string[]>((resolve, reject) => {
        calls.push({
          items,
          finish: (error) => (error ? reject(error) : resolve(items.map((i) => i.toUpperCase()))),
        });
        waiters.splice(0).forEach((wake) => wake());
      }),
    clock ? () => clock.now : undefined,
  );
  /** Resolves once `n` executions have started. */
  const started = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (calls.length >= n ? resolve() : waiters.push(check));
      check();
    });
  return { batcher, calls, started };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('worker: dynamic batcher', () => {
  it('runs a request for an idle model at once, alone', async () => {
    const { batcher, calls } = harness();
    const answer = batcher.submit('a', 'k', 1);
    assert.deepEqual(
      calls.map((c) => c.items),
      [['a']],
      'started synchronously, with no wait',
    );
    calls[0]!.finish();
    assert.equal((await answer).result, 'A');
  });

  it('runs the requests that arrived while it was busy as one batch, each getting its own result', async () => {
    const { batcher, calls, started } = harness();
    const first = batcher.submit('a', 'k', 1);
    const rest = ['b', 'c', 'd'].map((item) => batcher.submit(item, 'k', 2));
    assert.equal(calls.length, 1, 'one batch at a time');
    assert.equal(batcher.waiting, 3);
    calls[0]!.finish();
    await started(2);
    assert.deepEqual(calls[1]!.items, ['b', 'c', 'd']);
    calls[1]!.finish();
    assert.equal((await first).result, 'A');
    assert.deepEqual(
      (await Promise.all(rest)).map((r) => r.result),
      ['B', 'C', 'D'],
    );
  });

  it('never merges requests of different keys, keeps their order, and stops at max_batch_size rows', async () => {
    const { batcher, calls, started } = harness({ maxBatchSize: 4 });
    const all = [batcher.submit('busy', 'k', 1)];
    all.push(batcher.submit('x1', 'x', 1));
    all.push(batcher.submit('y1', 'y', 1));
    all.push(batcher.submit('x2', 'x', 2));
    all.push(batcher.submit('x3', 'x', 2)); // 1 + 2 + 2 > 4: waits for the next batch
    all.push(batcher.submit('y2', 'y', 1));
    all.push(batcher.submit('alone', null, 1));
    all.push(batcher.submit('huge', 'x', 5)); // more than max_batch_size: alone
    for (let n = 1; n <= 6; n++) {
      await started(n);
      calls[n - 1]!.finish();
    }
    await Promise.all(all);
    assert.deepEqual(
      calls.map((c) => c.items),
      [['busy'], ['x1', 'x2'], ['y1', 'y2'], ['x3'], ['alone'], ['huge']],
    );
  });

  it('cuts a batch at a preferred batch size, leaving the rest for the next', async () => {
    const { batcher, calls, started } = harness({ maxBatchSize: 8, preferredBatchSizes: [2, 4] });
    const all = [batcher.submit('busy', 'k', 1)];
    for (const item of ['a', 'b', 'c', 'd', 'e']) all.push(batcher.submit(item, 'k', 1));
    calls[0]!.finish();
    await started(2);
    assert.deepEqual(calls[1]!.items, ['a', 'b', 'c', 'd']);
    calls[1]!.finish();
    await started(3);
    assert.deepEqual(calls[2]!.items, ['e']);
    calls[2]!.finish();
    await Promise.all(all);
  });

  it('fails every request of a batch whose run fails, and only those', async () => {
    const { batcher, calls, started } = harness();
    const busy = batcher.submit('busy', 'k', 1);
    const doomed = [batcher.submit('a', 'k', 1), batcher.submit('b', 'k', 1)];
    const other = batcher.submit('c', 'other', 1);
    calls[0]!.finish();
    await started(2);
    calls[1]!.finish(new Error('the model refused'));
    for (const answer of doomed) await assert.rejects(answer, /the model refused/);
    await started(3);
    calls[2]!.finish();
    assert.equal((await other).result, 'C');
    assert.equal((await busy).result, 'BUSY');
  });

  it('takes a cancelled request out of the queue; one already running just runs', async () => {
    const { batcher, calls, started } = harness();
    const running = new AbortController();
    const busy = batcher.submit('busy', 'k', 1, running.signal);
    const leaving = new AbortController();
    const gone = batcher.submit('gone', 'k', 1, leaving.signal);
    const stays = batcher.submit('stays', 'k', 1);
    leaving.abort();
    await assert.rejects(gone, CancelledError);
    assert.equal(batcher.waiting, 1);
    running.abort(); // too late: its batch runs
    calls[0]!.finish();
    assert.equal((await busy).result, 'BUSY');
    await started(2);
    assert.deepEqual(calls[1]!.items, ['stays']);
    calls[1]!.finish();
    await stays;
    const already = new AbortController();
    already.abort();
    await assert.rejects(batcher.submit('late', 'k', 1, already.signal), CancelledError);
    assert.equal(calls.length, 2, 'nothing ran for the cancelled requests');
  });

  it('refuses a request when max_queue_size requests wait, and takes it again once there is room', async () => {
    const { batcher, calls, started } = harness({ maxQueueSize: 2 });
    const busy = batcher.submit('busy', 'k', 1);
    const queued = [batcher.submit('a', 'k', 1), batcher.submit('b', 'k', 1)];
    await assert.rejects(batcher.submit('c', 'k', 1), TooManyRequestsError);
    calls[0]!.finish();
    await started(2);
    const later = batcher.submit('c', 'k', 1);
    calls[1]!.finish();
    await started(3);
    calls[2]!.finish();
    await Promise.all([busy, ...queued, later]);
    assert.deepEqual(
      calls.map((c) => c.items),
      [['busy'], ['a', 'b'], ['c']],
    );
  });

  it('with a fixed delay, waits the whole delay for company below the target, and goes at once when full', async () => {
    const { batcher, calls, started } = harness({ adaptive: false, maxQueueDelayMs: 40, maxBatchSize: 3 });
    const since = performance.now();
    const lone = batcher.submit('a', 'k', 1);
    assert.equal(calls.length, 0, 'the idle model waits for company');
    await started(1);
    assert.ok(performance.now() - since >= 39, `waited ${performance.now() - since} ms`);
    calls[0]!.finish();
    await lone;

    const full = ['b', 'c', 'd'].map((item) => batcher.submit(item, 'k', 1));
    assert.deepEqual(calls[1]?.items, ['b', 'c', 'd'], 'a full batch does not wait');
    calls[1]!.finish();
    await Promise.all(full);
  });

  it('adapts the wait: raised by requests a wait would have caught, halved by waits with no company', async () => {
    const clock = { now: 0 };
    const { batcher, calls, started } = harness(
      { adaptive: true, maxQueueDelayMs: 10, maxBatchSize: 8 },
      clock,
    );
    assert.equal(batcher.waitMs, 0, 'it starts without waiting');

    // A lone client: its next request comes only after the answer — the wait stays zero.
    for (let i = 0; i < 3; i++) {
      const answer = batcher.submit(`solo${i}`, 'k', 1);
      assert.equal(calls.length, i + 1, 'ran at once');
      clock.now += 1;
      calls[i]!.finish();
      await answer;
      clock.now += 1;
    }
    assert.equal(batcher.waitMs, 0);

    // Company arriving 3 ms after a lone request started: the next wait would catch it.
    const lone = batcher.submit('lone', 'k', 1);
    clock.now += 3;
    const company = [batcher.submit('m1', 'k', 1), batcher.submit('m2', 'k', 1)];
    calls[3]!.finish();
    await lone;
    assert.equal(batcher.waitMs, 3);
    // m1 and m2 wait for company up to 3 ms after m1 came, and nobody joins them.
    await turn();
    assert.equal(calls.length, 4, 'they wait');
    clock.now += 3;
    await started(5);
    calls[4]!.finish();
    await Promise.all(company);
    assert.equal(batcher.waitMs, 1.5, 'a wait nobody joined is halved');

    // An idle request waits (up to 1.5 ms) and company joins it after 0.5 ms.
    const waiting = batcher.submit('w1', 'k', 1);
    await turn();
    assert.equal(calls.length, 5, 'it waits');
    clock.now += 0.5;
    const joined = batcher.submit('w2', 'k', 1);
    clock.now += 1;
    await started(6);
    assert.deepEqual(calls[5]!.items, ['w1', 'w2']);
    calls[5]!.finish();
    await Promise.all([waiting, joined]);
    assert.equal(batcher.waitMs, 0.75, 'a batch that filled in 0.5 ms waits 0.75 ms next time');

    // A wait that nobody joins halves it, down to zero.
    for (const expected of [0.375, 0.1875]) {
      const alone = batcher.submit('alone', 'k', 1);
      await turn();
      clock.now += 5;
      await started(calls.length + 1);
      calls.at(-1)!.finish();
      await alone;
      assert.equal(batcher.waitMs, expected);
    }
  });

  it('never waits longer than the configured delay, however late company came', async () => {
    const clock = { now: 0 };
    const { batcher, calls, started } = harness({ adaptive: true, maxQueueDelayMs: 2 }, clock);
    const lone = batcher.submit('lone', 'k', 1);
    clock.now += 1.5;
    const soon = batcher.submit('soon', 'k', 1);
    clock.now += 5;
    const late = batcher.submit('late', 'k', 1); // 6.5 ms after: no wait within 2 ms catches it
    calls[0]!.finish();
    await started(2);
    calls[1]!.finish();
    await Promise.all([lone, soon, late]);
    assert.equal(batcher.waitMs, 1.5);
  });
});
