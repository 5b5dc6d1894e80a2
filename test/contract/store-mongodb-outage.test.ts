/**
 * The MongoDB store while its database is away: calls fail fast with
 * StoreUnavailableError (the API answers 503), and once the server is back the same
 * store instance works again with everything acknowledged before still there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/errors.js';
import { MongoStore } from '../../src/store/mongodb/mongodb-store.js';
import { startFerretDb, type FerretDb } from '../helpers/ferretdb.js';

describe('MongoDB store: database outage and recovery', () => {
  let server: FerretDb;
  let store: MongoStore;
  before(async () => {
    server = await startFerretDb();
    store = new MongoStore(server.url('modeldock_outage'));
    await store.init();
  });
  after(async () => {
    await store?.close();
    await server?.close();
  });

  it('answers StoreUnavailableError while away and recovers without losing acknowledged writes', async () => {
    await store.ensureJob({ jobId: 'a1', model: 'm-131', dataset: 'ds-550' });
    const number = await store.allocateServerNumber();

    await server.stop();
    const started = Date.now();
    await assert.rejects(store.getJob('a1'), StoreUnavailableError);
    await assert.rejects(store.ping(), (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError);
      assert.match(error.message, /MongoDB store unavailable/);
      return true;
    });
    assert.ok(Date.now() - started < 10_000, 'fails fast instead of hanging');

    await server.restart();
    assert.equal((await store.getJob('a1'))?.model, 'm-131');
    assert.ok((await store.allocateServerNumber()) > number, 'numbering continues, nothing reused');
  });
});
