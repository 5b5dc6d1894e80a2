/**
 * The original README's five requests with the MongoDB store (the original system's
 * database), against FerretDB and the real engine; state readable as plain documents.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MongoClient } from 'mongodb';
import { MongoStore } from '../../src/store/mongodb/mongodb-store.js';
import { startFerretDb, type FerretDb } from '../helpers/ferretdb.js';
import { instanceContainers, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';

const requests = ORIGIN_REQUESTS;

describe('the original requests with MODELDOCK_DATABASE=mongodb://…', () => {
  let database: FerretDb;
  let t: TestRouter;
  let url: string;
  before(async () => {
    database = await startFerretDb();
    url = database.url('modeldock');
    t = await startTestRouter({ store: () => new MongoStore(url) });
  });
  after(async () => {
    await t?.cleanup();
    await database?.close();
  });

  it('runs all five and leaves readable documents behind', async () => {
    const states: string[] = [];
    for (const body of requests) {
      const response = await postJson(`${t.url}/inference_router/`, body);
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 400));
      states.push(`${response.body.operation_type}:${response.body.state}`);
    }
    assert.deepEqual(states, [
      'DEPLOY_CREATE:ready',
      'DEPLOY_LOAD:ready',
      'DEPLOY_UNLOAD:unloaded',
      'TERMINATE:terminated',
      'TEMP:terminated',
    ]);
    assert.equal((await instanceContainers(t.docker, t.instance)).length, 0);

    // A MongoDB user finds the job's server by job_id, as the original README wanted.
    const client = new MongoClient(url);
    try {
      const servers = await client
        .db()
        .collection('servers')
        .find({ job_id: 'a1' })
        .sort({ number: 1 })
        .toArray();
      assert.deepEqual(
        servers.map((s) => [s.server_id, s.kind, s.state]),
        [
          ['inf-0001', 'job', 'terminated'],
          ['inf-0002', 'temp', 'terminated'],
        ],
      );
      const ops = await client
        .db()
        .collection('operations')
        .countDocuments({ job_id: 'a1', status: 'succeeded' });
      assert.equal(ops, 5);
    } finally {
      await client.close();
    }
  });
});
