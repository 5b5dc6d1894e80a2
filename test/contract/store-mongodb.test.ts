import { MongoStore } from '../../src/store/mongodb/mongodb-store.js';
import { startFerretDb } from '../helpers/ferretdb.js';
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
