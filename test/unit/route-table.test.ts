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
    assert.equal(table.withdraw('j1'), entry);
    assert.ok(entry.withdrawn);
    assert.equal(table.acquire('j1'), undefined, 'no new request on a withdrawn route');
    assert.equal(table.withdraw('j1'), undefined);
    entry.release();
    entry.release();
    assert.equal(entry.inFlight, 0);
  });

  it('a route replaced by a new one is withdrawn', () => {
    const table = new RouteTable();
    const old = table.set(new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:1', 'j1'));
    const next = table.set(new RouteEntry('j1', 'inf-0001', 'http://127.0.0.1:2', 'j1'));
    assert.ok(old.withdrawn);
    assert.ok(!next.withdrawn);
    assert.equal(table.get('j1'), next);
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
