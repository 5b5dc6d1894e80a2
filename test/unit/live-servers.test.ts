import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LiveServers } from '../../src/lifecycle/live-servers.js';
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
