import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/errors.js';
import { MongoStore } from '../../src/store/mongodb/mongodb-store.js';
import { startFerretDb, type FerretDb } from '../helpers/ferretdb.js';
import { runStoreContract } from './store.contract.js';

runStoreContract('mongodb (FerretDB 1.24.2)', async () => {
  const server = await startFerretDb();
  const url = server.url('modeldock_contract');
  const opened: MongoStore[] = [];
  const fixture = {
    store: new MongoStore(url),
    second: async () => {
      const store = new MongoStore(url);
      await store.init();
      opened.push(store);
      return store;
    },
    cleanup: async () => {
      await fixture.store.close();
      for (const store of opened) await store.close();
      await server.close();
    },
  };
  return fixture;
});

describe('mongodb write concern (FerretDB 1.24.2)', { timeout: 120_000 }, () => {
  let server: FerretDb;
  before(async () => {
    server = await startFerretDb();
  });
  after(async () => {
    await server?.close();
  });

  it('refuses to start on FerretDB under the default w: "majority", saying why and how to accept it', async () => {
    const store = new MongoStore(server.bareUrl('modeldock_refused'));
    try {
      await assert.rejects(store.init(), (error: unknown) => {
        assert.ok(error instanceof StoreUnavailableError);
        assert.match(error.message, /the server is FerretDB, which ignores write concerns/);
        assert.match(error.message, /w: "majority", j: true/);
        assert.match(error.message, /adding w=1 to MODELDOCK_DATABASE/);
        return true;
      });
    } finally {
      await store.close();
    }
  });

  it('with w=1 in the URL it starts, journals (j: true) and keeps what the URL says', async () => {
    const store = new MongoStore(server.url('modeldock_w1'));
    try {
      await store.init();
      assert.deepEqual(store.writeConcern(), { w: 1, journal: true });
      await store.ensureJob({ jobId: 'a1', model: 'm-131', dataset: 'ds-550' });
      assert.equal((await store.getJob('a1'))?.model, 'm-131');
    } finally {
      await store.close();
    }
  });

  it('refuses w=0 everywhere: nothing would be acknowledged', async () => {
    const store = new MongoStore(`${server.bareUrl('modeldock_w0')}?w=0`);
    try {
      await assert.rejects(store.init(), /asks for no acknowledgement/);
    } finally {
      await store.close();
    }
  });
});
