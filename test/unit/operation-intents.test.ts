/**
 * An operation's intent, and the state changes it holds, are committed with its next
 * change (src/lifecycle/operation-intents.ts), on a real SQLite store: in the same
 * transaction as its next store call, before a step that acts on a worker, or with the
 * finished record; and whatever follows sees them written.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { StaleVersionError } from '../../src/errors.js';
import { EventBus } from '../../src/lifecycle/event-bus.js';
import { intentsFirst } from '../../src/lifecycle/operation-intents.js';
import { OperationRecorder } from '../../src/lifecycle/operation-recorder.js';
import { Metrics } from '../../src/observability/metrics.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { serverInput } from '../contract/store.contract.js';

describe('operation intents', () => {
  let dir: string;
  let raw: SqliteStore;
  let other: SqliteStore;
  let store: Store;
  /** Transactions begun on the store (each one commit), and writes outside any. */
  let transactions = 0;
  const deps = () => ({
    store,
    metrics: new Metrics(),
    events: new EventBus(),
    logger: pino({ level: 'silent' }),
  });
  const begin = (jobId: string) =>
    OperationRecorder.begin(deps(), { type: 'DEPLOY_LOAD', jobId, reason: 'on_demand' });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-intents-'));
    raw = new SqliteStore(path.join(dir, 'modeldock.db'));
    other = new SqliteStore(path.join(dir, 'modeldock.db'));
    await raw.init();
    await other.init();
    const counted: Store = Object.create(raw) as Store;
    counted.transaction = (work) => {
      transactions++;
      return raw.transaction(work);
    };
    store = intentsFirst(counted);
  });
  after(async () => {
    await raw.close();
    await other.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is not written before the operation changes anything', async () => {
    const rec = await begin('i1');
    assert.equal(await other.getOperation(rec.id), undefined);
    assert.equal(rec.intent.pending, true);
  });

  it('is committed with the first write, in one transaction, before what follows', async () => {
    await store.insertServer(serverInput(101, { jobId: 'i2' }));
    const rec = await begin('i2');
    transactions = 0;
    await rec.intent.run(async () => {
      const updated = await store.updateServer('inf-0101', 1, { state: 'loading' });
      // Written with it: another connection sees both.
      assert.equal((await other.getOperation(rec.id))?.status, 'running');
      assert.equal((await other.getServer('inf-0101'))?.version, updated.version);
      await store.updateServer('inf-0101', updated.version, { state: 'ready' });
    });
    assert.equal(transactions, 1, 'the intent and the first write: one transaction');
    const finished = await rec.succeed('inf-0101');
    assert.equal(finished.status, 'succeeded');
    assert.equal((await other.getOperation(rec.id))?.serverId, 'inf-0101');
  });

  it('is written alone before a step that acts on a worker, never after it', async () => {
    const rec = await begin('i3');
    await rec.intent.run(async () => {
      // Local steps (a placement, a drain) act on nothing outside the router: not yet.
      await rec.step('drain', async () => assert.equal(await other.getOperation(rec.id), undefined));
      await rec.step('load', async () => assert.equal((await other.getOperation(rec.id))?.status, 'running'));
    });
    assert.equal((await rec.succeed()).steps.length, 2);
  });

  it('names the server attached while it waits, and is written once as finished when nothing came first', async () => {
    const rec = await begin('i4');
    await rec.attachServer('inf-0007');
    const failed = await rec.fail(new Error('refused before anything happened'));
    const stored = await other.getOperation(rec.id);
    assert.equal(stored?.status, 'failed');
    assert.equal(stored?.serverId, 'inf-0007');
    assert.deepEqual(stored, failed);
  });

  it('holds state changes until the next worker step or the finish, each time in one transaction', async () => {
    await store.insertServer(serverInput(104, { jobId: 'i6' }));
    const rec = await begin('i6');
    transactions = 0;
    await rec.intent.run(async () => {
      rec.intent.hold(() => store.updateServer('inf-0104', 1, { state: 'loading' }));
      assert.equal((await other.getServer('inf-0104'))?.state, 'creating');
      await rec.step('load', async () => {
        // Written before the worker is touched: the intent and `loading`, together.
        assert.equal((await other.getOperation(rec.id))?.status, 'running');
        assert.equal((await other.getServer('inf-0104'))?.state, 'loading');
      });
      rec.intent.hold(() => store.updateServer('inf-0104', 2, { state: 'ready' }));
    });
    assert.equal((await other.getServer('inf-0104'))?.state, 'loading');
    await rec.succeed('inf-0104');
    assert.equal((await other.getServer('inf-0104'))?.state, 'ready');
    assert.equal(transactions, 2, 'intent and loading; ready and the finish');
  });

  it("lets the operation's own reads see what it holds; a held write refused fails the call that writes it", async () => {
    await store.insertServer(serverInput(105, { jobId: 'i7' }));
    const rec = await begin('i7');
    await rec.intent.run(async () => {
      rec.intent.hold(() => store.updateServer('inf-0105', 1, { state: 'loading' }));
      assert.equal((await store.getServer('inf-0105'))?.state, 'loading');
      // Someone else changed the record meanwhile: the held write names a stale version.
      rec.intent.hold(() => store.updateServer('inf-0105', 1, { state: 'ready' }));
      await assert.rejects(
        rec.step('load', async () => undefined),
        StaleVersionError,
      );
    });
    assert.equal((await other.getServer('inf-0105'))?.state, 'loading');
  });

  it('comes first for writes beside each other in one operation, and once', async () => {
    await store.insertServer(serverInput(102, { jobId: 'i5' }));
    await store.insertServer(serverInput(103, { jobId: 'i5' }));
    const rec = await begin('i5');
    await rec.intent.run(() =>
      Promise.all([
        store.updateServer('inf-0102', 1, { state: 'loading' }),
        store.updateServer('inf-0103', 1, { state: 'loading' }),
      ]),
    );
    assert.equal((await other.listOperations({ jobId: 'i5' })).length, 1);
    assert.equal((await rec.succeed()).status, 'succeeded');
  });
});
