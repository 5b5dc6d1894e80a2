import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LiveServers, isHostedShared } from '../../src/lifecycle/live-servers.js';
import { LIVE_STATES } from '../../src/lifecycle/state-machine.js';
import type { ServerRecord } from '../../src/store/records.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { serverInput } from '../contract/store.contract.js';

describe('the live servers kept in memory (live-servers.ts)', () => {
  let dir: string;
  let store: SqliteStore;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-live-'));
    store = new SqliteStore(path.join(dir, 'modeldock.db'));
    await store.init();
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function insert(jobId: string): Promise<ServerRecord> {
    const number = await store.allocateServerNumber();
    return store.insertServer(serverInput(number, { jobId, placement: 'shared', workerName: '' }));
  }

  const ids = async (live: LiveServers) => [...(await live.list())].map((s) => s.jobId).sort();
  const stored = () => store.listServers({ states: LIVE_STATES });

  it('reads the store once at first use, then counts what it is told', async () => {
    const first = await insert('l1');
    const live = new LiveServers(store);
    assert.deepEqual(await ids(live), ['l1']);
    // Written by this router: told, not read again.
    live.track(await insert('l2'));
    const ended = await store.updateServer(first.serverId, first.version, { state: 'terminated' });
    live.track(ended);
    assert.deepEqual(await ids(live), ['l2']);
  });

  it('keeps the newer of two writes to one record told out of order', async () => {
    const live = new LiveServers(store);
    const server = await insert('l3');
    const loading = await store.updateServer(server.serverId, server.version, { state: 'loading' });
    const ready = await store.updateServer(loading.serverId, loading.version, { state: 'ready' });
    live.track(ready);
    live.track(loading);
    const found = [...(await live.list())].find((s) => s.serverId === server.serverId);
    assert.equal(found?.state, 'ready');
  });

  it('becomes what the store holds on a refresh, but for what was written after the read began', async () => {
    const live = new LiveServers(store);
    await live.list();
    // A record changed behind its back (another writer, a restored database): the refresh
    // finds it; one that is no longer live goes.
    const [l2] = (await stored()).filter((s) => s.jobId === 'l2');
    await store.updateServer(l2!.serverId, l2!.version, { state: 'terminated' });
    const outside = await insert('l4');

    const mark = live.mark();
    const read = await stored();
    // Written after the read began: newer than what the read saw, so it stays.
    const late = await insert('l5');
    live.track(late);
    const readyL4 = await store.updateServer(outside.serverId, outside.version, { state: 'ready' });
    live.track(readyL4);
    live.refresh(read, mark);

    assert.deepEqual(await ids(live), ['l3', 'l4', 'l5']);
    const l4 = [...(await live.list())].find((s) => s.jobId === 'l4');
    assert.equal(l4?.state, 'ready', 'the write after the read, not the stale read');
  });

  it('tries the store again when its first read failed', async () => {
    let failing = true;
    const live = new LiveServers({
      listServers: (filter) =>
        failing ? Promise.reject(new Error('store away')) : store.listServers(filter),
    });
    await assert.rejects(live.list(), /store away/);
    failing = false;
    assert.ok((await ids(live)).includes('l3'));
  });

  it('holds a listed record until this router writes it: the reconciler reads it again only then', async () => {
    const live = new LiveServers(store);
    const mark = live.mark();
    const read = await stored();
    live.refresh(read, mark);
    const l3 = read.find((s) => s.jobId === 'l3')!;
    assert.equal(live.holds(l3), true);
    live.track(await store.updateServer(l3.serverId, l3.version, { state: 'ready' }));
    assert.equal(live.holds(l3), false, 'the listed version is stale');
  });
});

describe("the live servers' indexes (live-servers.ts)", () => {
  let dir: string;
  let store: SqliteStore;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-live-index-'));
    store = new SqliteStore(path.join(dir, 'modeldock.db'));
    await store.init();
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** What the indexes must say, by a scan of every live record. */
  async function scanned(live: LiveServers) {
    const hosted: Record<string, string[]> = {};
    const unshared: string[] = [];
    for (const server of await live.list()) {
      if (server.placement !== 'shared') unshared.push(server.serverId);
      else if (isHostedShared(server)) (hosted[server.workerName] ??= []).push(server.serverId);
    }
    return { hosted: sortedValues(hosted), unshared: unshared.sort() };
  }

  async function indexed(live: LiveServers) {
    const hosted: Record<string, string[]> = {};
    for (const [worker, servers] of await live.hostedByWorker()) {
      const numbers = servers.map((s) => s.number);
      assert.deepEqual(
        numbers,
        [...numbers].sort((a, b) => a - b),
        `${worker}'s records in number order`,
      );
      hosted[worker] = servers.map((s) => s.serverId);
    }
    return {
      hosted: sortedValues(hosted),
      unshared: [...(await live.notShared())].map((s) => s.serverId).sort(),
    };
  }

  function sortedValues(byWorker: Record<string, string[]>) {
    return Object.fromEntries(
      Object.entries(byWorker)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([worker, ids]) => [worker, ids.sort()]),
    );
  }

  async function assertAgree(live: LiveServers, when: string) {
    const expected = await scanned(live);
    assert.deepEqual(await indexed(live), expected, when);
    const count = Object.values(expected.hosted).reduce((sum, ids) => sum + ids.length, 0);
    assert.equal(await live.hostedCount(), count, `${when}: the hosted count`);
  }

  it('agree with a scan of every live record after loads, unloads, evictions, re-placements and a refresh', async () => {
    const live = new LiveServers(store);
    const servers = new Map<string, ServerRecord>();
    const write = async (server: ServerRecord) => {
      servers.set(server.serverId, server);
      live.track(server);
    };
    // Twelve shared jobs placed (creating, no worker yet) and two dedicated servers.
    for (let i = 0; i < 12; i++) {
      const number = await store.allocateServerNumber();
      await write(
        await store.insertServer(
          serverInput(number, { jobId: `x${i}`, placement: 'shared', workerName: '' }),
        ),
      );
    }
    for (let i = 0; i < 2; i++) {
      const number = await store.allocateServerNumber();
      await write(await store.insertServer(serverInput(number, { jobId: `d${i}` })));
    }
    await assertAgree(live, 'placed, on no worker yet');

    const update = async (server: ServerRecord, patch: Partial<ServerRecord>) =>
      write(await store.updateServer(server.serverId, server.version, patch));
    const shared = () => [...servers.values()].filter((s) => s.placement === 'shared');
    // Loads onto three workers.
    for (const [i, server] of shared().entries()) {
      await update(server, { state: 'loading', workerName: `w-${i % 3}` });
      await update(servers.get(server.serverId)!, { state: 'ready' });
    }
    await assertAgree(live, 'loaded on three workers');
    // Evictions and unloads: the record stays live (unloaded), its model leaves the worker.
    for (const server of shared().slice(0, 4)) {
      await update(server, { state: 'unloading' });
      await update(servers.get(server.serverId)!, { state: 'unloaded' });
    }
    await assertAgree(live, 'four evicted');
    // A re-placement: loaded again on another worker.
    const moved = shared()[0]!;
    await update(moved, { state: 'loading', workerName: 'w-9' });
    await assertAgree(live, 'loading on another worker');
    await update(servers.get(moved.serverId)!, { state: 'ready' });
    // A worker that died: its models failed, then terminated ones leave the view.
    for (const server of shared().filter((s) => s.workerName === 'w-1' && s.state === 'ready'))
      await update(server, { state: 'failed' });
    await assertAgree(live, "a worker's models failed");
    for (const server of [...servers.values()].filter((s) => s.jobId === 'x5' || s.jobId === 'd0'))
      await update(server, { state: 'terminated' });
    await assertAgree(live, 'terminated');
    assert.deepEqual(
      (await live.hostedByWorker()).get('w-9')!.map((s) => s.serverId),
      [moved.serverId],
      'the re-placed model is on its new worker only',
    );

    // Changed behind the router's back, then a reconciler's refresh: the indexes follow the store.
    const behind = shared().find((s) => s.state === 'ready' && s.workerName === 'w-2')!;
    await store.updateServer(behind.serverId, behind.version, { state: 'unloaded' });
    const mark = live.mark();
    live.refresh(await store.listServers({ states: LIVE_STATES }), mark);
    await assertAgree(live, 'after a refresh');
    assert.equal(
      (await live.hostedByWorker()).get('w-2')?.some((s) => s.serverId === behind.serverId) ?? false,
      false,
      'unloaded behind its back: no longer hosted',
    );
  });
});
