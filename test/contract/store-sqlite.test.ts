import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { runStoreContract } from './store.contract.js';

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
