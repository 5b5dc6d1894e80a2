import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { formatServerId } from '../../src/store/server-id.js';
import { runStoreContract, serverInput } from './store.contract.js';

runStoreContract('sqlite', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-store-'));
  const file = path.join(dir, 'nested', 'modeldock.db');
  const opened: SqliteStore[] = [];
  const open = async () => {
    const store = new SqliteStore(file);
    await store.init();
    opened.push(store);
    return store;
  };
  const fixture = {
    store: new SqliteStore(file),
    second: open,
    cleanup: async () => {
      await fixture.store.close();
      for (const store of opened) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fixture;
});

describe('sqlite schema migration', () => {
  it('opens a database from before callers were recorded: its operations say `unknown`', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-migrate-'));
    const file = path.join(dir, 'modeldock.db');
    const old = new Database(file);
    old.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    old.exec(MIGRATIONS[0]!);
    old.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', '1')").run();
    old
      .prepare(
        `INSERT INTO operations (operation_id, type, job_id, status, reason, steps, warnings, started_at)
         VALUES ('op-old', 'DEPLOY_CREATE', 'a1', 'succeeded', 'request', '[]', '[]', ?)`,
      )
      .run(new Date().toISOString());
    old.close();
    const store = new SqliteStore(file);
    try {
      await store.init();
      assert.equal((await store.getOperation('op-old'))?.caller, 'unknown');
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sqlite durability settings', () => {
  it('syncs every commit (synchronous=FULL) unless told normal, the setting that loses commits on power loss', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-sync-'));
    const durable = new SqliteStore(path.join(dir, 'full.db'));
    const old = new SqliteStore(path.join(dir, 'normal.db'), { synchronous: 'normal' });
    try {
      await durable.init();
      await old.init();
      assert.equal(durable.synchronousLevel(), 2);
      assert.equal(old.synchronousLevel(), 1);
    } finally {
      await durable.close();
      await old.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sqlite transactions', () => {
  it('commit once at the end: another connection sees none of the writes before, all of them after', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-tx-'));
    const file = path.join(dir, 'modeldock.db');
    const store = new SqliteStore(file);
    const other = new SqliteStore(file);
    try {
      await store.init();
      await other.init();
      const number = await store.transaction(async () => {
        const number = await store.allocateServerNumber();
        await store.insertServer(serverInput(number));
        await store.updateServer(formatServerId(number), 1, { state: 'loading' });
        // Inside: this connection sees its own writes, the other one nothing yet.
        assert.equal((await store.getServer(formatServerId(number)))?.state, 'loading');
        assert.equal(await other.getServer(formatServerId(number)), undefined);
        return number;
      });
      assert.equal((await other.getServer(formatServerId(number)))?.state, 'loading');
    } finally {
      await store.close();
      await other.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('hold the calls of everyone else on the connection until they are committed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-tx-'));
    const store = new SqliteStore(path.join(dir, 'modeldock.db'));
    try {
      await store.init();
      let inside = true;
      const transaction = store.transaction(async () => {
        const number = await store.allocateServerNumber();
        await store.insertServer(serverInput(number));
        await store.updateServer(formatServerId(number), 1, { state: 'loading' });
        inside = false;
      });
      // A call from elsewhere (not from the transaction's work) while it is open…
      let outsideSawInside: boolean | undefined;
      const outside = store.listServers().then(() => (outsideSawInside = inside));
      await Promise.all([transaction, outside]);
      // …and ran only once it was over (it would have run inside the transaction otherwise).
      assert.equal(outsideSawInside, false);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
