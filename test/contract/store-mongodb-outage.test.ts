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

/** Below the store's 30 s socket timeout, ten times its 2 s server selection timeout. */
const FAILS_FAST_MS = 20_000;

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
    const unavailable = (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.match(
        error.message,
        /MongoDB store unavailable \(mongodb:\/\/127\.0\.0\.1:\d+\/modeldock_outage\?w=1\)/,
      );
      return true;
    };
    // Each call fails on the driver's server selection (2 s), not after the 30 s socket
    // timeout or never: a bound between the two, generous for a busy machine.
    const failsFast = async (call: Promise<unknown>, what: string) => {
      const started = Date.now();
      await assert.rejects(call, unavailable);
      const ms = Date.now() - started;
      assert.ok(ms < FAILS_FAST_MS, `${what} failed after ${ms} ms instead of at once`);
    };
    await failsFast(store.getJob('a1'), 'getJob');
    await failsFast(store.ping(), 'ping');
    await failsFast(store.currentServer('a1'), 'currentServer');
    await failsFast(store.allocateServerNumber(), 'allocateServerNumber');
    await failsFast(store.updateServer(ready.serverId, ready.version, { state: 'failed' }), 'updateServer');

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
