/**
 * The route table's bookkeeping: requests count on the route they took, a withdrawn
 * route takes no new ones, and a drain resolves when the last request is done or
 * reports how many were left when its timeout came.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RouteEntry, RouteTable } from '../../src/lifecycle/route-table.js';

describe('route table', () => {
  it('counts the requests on a route and takes a withdrawn route away from new ones', () => {
    const table = new RouteTable();
    const entry = table.set(new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:1', 'j1'));
    assert.equal(entry.modelPath, '/v2/models/j1');
    assert.equal(table.acquire('j1'), entry);
    assert.equal(table.acquire('j1'), entry);
    assert.equal(entry.inFlight, 2);
    assert.deepEqual(table.withdraw('j1'), [entry]);
    assert.ok(entry.withdrawn);
    assert.equal(table.acquire('j1'), undefined, 'no new request on a withdrawn route');
    assert.deepEqual(table.withdraw('j1'), []);
    entry.release();
    entry.release();
    assert.equal(entry.inFlight, 0);
  });

  it("a server's route replaced by a new one is withdrawn", () => {
    const table = new RouteTable();
    const old = table.set(new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:1', 'j1'));
    const next = table.set(new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:2', 'j1'));
    assert.ok(old.withdrawn);
    assert.ok(!next.withdrawn);
    assert.deepEqual(table.list('j1'), [next]);
  });

  it("balances a job's requests over its replicas, the less busy of two each time", () => {
    const table = new RouteTable();
    const replicas = [1, 2, 3].map((n) =>
      table.set(new RouteEntry('j1', `inf-000${n}`, `http://127.0.0.1:${n}`, 'j1')),
    );
    // Requests held open: power of two choices keeps the in-flight counts close together.
    for (let i = 0; i < 300; i++) table.acquire('j1');
    const counts = replicas.map((entry) => entry.inFlight);
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      300,
    );
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 2, `in flight per replica: ${counts.join(', ')}`);
    // A replica that holds many requests gets none of the next ones while the others are idle.
    for (const entry of replicas) while (entry.inFlight > 0) entry.release();
    for (let i = 0; i < 10; i++) replicas[0]!.acquire();
    for (let i = 0; i < 8; i++) {
      const taken = table.acquire('j1')!;
      assert.notEqual(taken, replicas[0], 'the busy replica is never the less busy of two');
    }
  });

  it("withdraws one replica's route and leaves the others serving", async () => {
    const table = new RouteTable();
    const a = table.set(new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:1', 'j1'));
    const b = table.set(new RouteEntry('j1', 'inf-0002', 'http://127.0.0.1:2', 'j1'));
    a.acquire();
    assert.equal(table.withdrawServer('j1', 'inf-0001'), a);
    assert.ok(a.withdrawn && !b.withdrawn);
    for (let i = 0; i < 5; i++) assert.equal(table.acquire('j1'), b, 'only the replica left takes requests');
    assert.equal(table.withdrawServer('j1', 'inf-0001'), undefined);
    const drained = a.drain(60_000);
    a.release();
    assert.equal(await drained, 0, 'the withdrawn replica drains its own requests');
    assert.equal(table.withdrawServer('j1', 'inf-0002'), b);
    assert.equal(table.acquire('j1'), undefined, 'no replica left: requests must look the job up');
    assert.ok(table.lastUsedAt('j1')! > 0, 'the last use is remembered for the memory policy');
  });

  it('measures the average concurrency on a route between two samples', () => {
    const entry = new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:1', 'j1');
    const start = Date.now();
    entry.sampleConcurrency(start);
    entry.acquire();
    entry.acquire();
    // Two requests in flight over the whole sample: an average of about 2.
    const average = entry.sampleConcurrency(start + 1_000);
    assert.ok(average > 1.9 && average <= 2, `average ${average}`);
    const idle = new RouteEntry('j1', 'inf-0002', 'http://127.0.0.1:2', 'j1');
    assert.equal(idle.sampleConcurrency(Date.now() + 1_000), 0, 'no request, no concurrency');
  });

  it('a drain resolves with 0 once the last request is released, at once when none is in flight', async () => {
    const entry = new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:1', 'j1');
    assert.equal(await entry.drain(10), 0);
    entry.acquire();
    entry.acquire();
    const drained = entry.drain(60_000);
    entry.release();
    let settled = false;
    void drained.then(() => (settled = true));
    await Promise.resolve();
    assert.equal(settled, false, 'one request is still in flight');
    entry.release();
    assert.equal(await drained, 0);
  });

  it('a drain that times out reports the requests still in flight', async () => {
    const entry = new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:1', 'j1');
    entry.acquire();
    assert.equal(await entry.drain(5), 1);
    entry.release(); // late: nothing waits any more, nothing breaks
    assert.equal(entry.inFlight, 0);
  });
});
