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
import { serverInput } from './store.contract.js';

describe('MongoDB store: database outage and recovery', () => {
  let database: FerretDb;
  let store: MongoStore;
  before(async () => {
    database = await startFerretDb();
    store = new MongoStore(database.url('modeldock_outage'));
    await store.init();
  });
  after(async () => {
    await store?.close();
    await database?.close();
  });

  it('answers StoreUnavailableError while away and recovers without losing acknowledged writes', async () => {
    await store.ensureJob({ jobId: 'a1', model: 'm-131', dataset: 'ds-550' });
    const number = await store.allocateServerNumber();
    const server = await store.insertServer(serverInput(number));
    const ready = await store.updateServer(server.serverId, server.version, { state: 'ready' });

    await database.stop();
    const started = Date.now();
    const unavailable = (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.match(
        error.message,
        /MongoDB store unavailable \(mongodb:\/\/127\.0\.0\.1:\d+\/modeldock_outage\?w=1\)/,
      );
      return true;
    };
    await assert.rejects(store.getJob('a1'), unavailable);
    await assert.rejects(store.ping(), unavailable);
    await assert.rejects(store.currentServer('a1'), unavailable);
    await assert.rejects(store.allocateServerNumber(), unavailable);
    await assert.rejects(store.updateServer(ready.serverId, ready.version, { state: 'failed' }), unavailable);
    assert.ok(Date.now() - started < 15_000, 'fails fast instead of hanging');

    await database.restart();
    await store.ping();
    assert.equal((await store.getJob('a1'))?.model, 'm-131');
    assert.deepEqual(await store.currentServer('a1'), ready, 'the acknowledged transition is there');
    // The update refused during the outage left nothing behind: the next one applies at once.
    const after = await store.updateServer(ready.serverId, ready.version, { state: 'unloading' });
    assert.equal(after.version, ready.version + 1);
    assert.ok((await store.allocateServerNumber()) > number, 'numbering continues, nothing reused');
  });
});
