/**
 * The Store contract: every backend runs this suite unchanged (store-sqlite.test.ts,
 * store-mongodb.test.ts). It pins what the router relies on: numbering that never
 * repeats (also across two store instances on one database), conditional updates that
 * never silently overwrite, history, operation records, filters, newest-first listing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConflictError, NotFoundError, StaleVersionError } from '../../src/errors.js';
import type { OperationRecord, ServerRecord } from '../../src/store/records.js';
import { formatServerId } from '../../src/store/server-id.js';
import type { Store } from '../../src/store/store.js';

export interface StoreFixture {
  store: Store;
  /** A second, independent store instance on the same database (another router). */
  second(): Promise<Store>;
  cleanup(): Promise<void>;
}

/** What insertServer takes for server `number` of job a1, fresh and creating. */
export function serverInput(number: number, over: Partial<ServerRecord> = {}) {
  const serverId = formatServerId(number);
  return {
    serverId,
    number,
    jobId: 'a1',
    model: 'm-131',
    dataset: 'ds-550',
    kind: 'job' as const,
    placement: 'dedicated' as const,
    state: 'creating' as const,
    reason: null,
    runtime: 'docker',
    workerName: `modeldock-${serverId}`,
    workerId: null,
    endpoint: null,
    restarts: 0,
    loadedAt: null,
    lastUsedAt: null,
    terminatedAt: null,
    ...over,
  };
}

function operation(id: string, over: Partial<OperationRecord> = {}): OperationRecord {
  return {
    operationId: id,
    type: 'DEPLOY_CREATE',
    jobId: 'a1',
    serverId: null,
    status: 'running',
    reason: 'request',
    caller: 'key-0123456789ab',
    steps: [],
    warnings: [],
    error: null,
    startedAt: new Date().toISOString(),
    finishedAt: null,
    durationMs: null,
    ...over,
  };
}

export function runStoreContract(name: string, makeFixture: () => Promise<StoreFixture>): void {
  describe(`Store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;
    before(async () => {
      fixture = await makeFixture();
      store = fixture.store;
      await store.init();
      await store.init(); // idempotent
    });
    after(async () => {
      await fixture?.cleanup();
    });

    it('answers ping', async () => {
      await store.ping();
    });

    describe('jobs', () => {
      it('ensureJob inserts once and never overwrites', async () => {
        const first = await store.ensureJob({ jobId: 'a1', model: 'm-131', dataset: 'ds-550' });
        assert.equal(first.model, 'm-131');
        const again = await store.ensureJob({ jobId: 'a1', model: 'other', dataset: 'other' });
        assert.equal(again.model, 'm-131');
        assert.equal(again.createdAt, first.createdAt);
        assert.deepEqual(await store.getJob('a1'), first);
      });

      it('updateJob changes model and dataset; unknown job is NotFound', async () => {
        await store.ensureJob({ jobId: 'u1', model: 'm-1', dataset: 'd-1' });
        const updated = await store.updateJob('u1', { model: 'm-2', dataset: 'd-2' });
        assert.equal(updated.model, 'm-2');
        assert.equal((await store.getJob('u1'))!.dataset, 'd-2');
        await assert.rejects(store.updateJob('nobody', { model: 'x', dataset: 'y' }), NotFoundError);
      });

      it('a job keeps one replica by default: bounds 1/1, desired 1, no scale target', async () => {
        const job = await store.ensureJob({ jobId: 'r0', model: 'm-131', dataset: 'ds-550' });
        assert.deepEqual(job.replicas, { min: 1, max: 1 });
        assert.equal(job.desiredReplicas, 1);
        assert.equal(job.scaleTarget, null);
      });

      it('stores replica bounds, desired replicas and scale target, and updates each alone', async () => {
        const job = await store.ensureJob({
          jobId: 'r1',
          model: 'm-131',
          dataset: 'ds-550',
          replicas: { min: 0, max: 3 },
          scaleTarget: 2.5,
        });
        assert.deepEqual(job.replicas, { min: 0, max: 3 });
        assert.equal(job.desiredReplicas, 1, 'a job with min 0 starts with one replica');
        assert.equal(job.scaleTarget, 2.5);
        const scaled = await store.updateJob('r1', { desiredReplicas: 3 });
        assert.equal(scaled.desiredReplicas, 3);
        assert.deepEqual(scaled.replicas, { min: 0, max: 3 }, 'other fields are untouched');
        assert.equal(scaled.model, 'm-131');
        const bounds = await store.updateJob('r1', { replicas: { min: 2, max: 4 }, scaleTarget: null });
        assert.deepEqual(bounds.replicas, { min: 2, max: 4 });
        assert.equal(bounds.scaleTarget, null);
        assert.deepEqual(await store.getJob('r1'), bounds);
        const again = await store.ensureJob({ jobId: 'r1', model: 'm-131', dataset: 'ds-550' });
        assert.deepEqual(again.replicas, { min: 2, max: 4 }, 'ensureJob never overwrites the bounds');
      });

      it("stores a job's placement (dedicated by default) and updates it", async () => {
        const plain = await store.ensureJob({ jobId: 'p0', model: 'm-131', dataset: 'ds-550' });
        assert.equal(plain.placement, 'dedicated');
        const shared = await store.ensureJob({
          jobId: 'p1',
          model: 'm-131',
          dataset: 'ds-550',
          placement: 'shared',
        });
        assert.equal(shared.placement, 'shared');
        assert.equal((await store.getJob('p1'))?.placement, 'shared');
        const changed = await store.updateJob('p1', { placement: 'dedicated' });
        assert.equal(changed.placement, 'dedicated');
        assert.deepEqual(changed.replicas, shared.replicas, 'other fields are untouched');
      });

      it('getJob of an unknown job is undefined; listJobs lists all', async () => {
        assert.equal(await store.getJob('nobody'), undefined);
        const ids = (await store.listJobs()).map((j) => j.jobId);
        assert.ok(ids.includes('a1') && ids.includes('u1'));
      });
    });

    describe('server numbers', () => {
      it('count up and never repeat', async () => {
        const a = await store.allocateServerNumber();
        const b = await store.allocateServerNumber();
        assert.ok(b > a);
      });

      it('never hand out one number twice, also to two routers allocating at once', async () => {
        const other = await fixture.second();
        try {
          const numbers = await Promise.all([
            ...Array.from({ length: 50 }, () => store.allocateServerNumber()),
            ...Array.from({ length: 50 }, () => other.allocateServerNumber()),
          ]);
          assert.equal(new Set(numbers).size, 100, 'all distinct');
        } finally {
          await other.close();
        }
      });

      it('a reserved number (an adopted worker) is never handed out; reserving twice is fine', async () => {
        const before = await store.allocateServerNumber();
        const reserved = before + 40;
        await store.reserveServerNumber(reserved);
        await store.reserveServerNumber(reserved);
        await store.reserveServerNumber(before); // already handed out: no effect
        assert.ok((await store.allocateServerNumber()) > reserved);
      });
    });

    describe('servers', () => {
      let server: ServerRecord;
      before(async () => {
        server = await store.insertServer(serverInput(await store.allocateServerNumber()));
      });

      it('insertServer starts at version 1 and refuses a duplicate id', async () => {
        assert.equal(server.version, 1);
        assert.equal(server.state, 'creating');
        assert.deepEqual(await store.getServer(server.serverId), server);
        await assert.rejects(store.insertServer(serverInput(server.number)), ConflictError);
      });

      it('a shared server keeps its placement; its worker name (the shared worker) may change', async () => {
        const shared = await store.insertServer(
          serverInput(await store.allocateServerNumber(), { placement: 'shared', workerName: '' }),
        );
        assert.equal(shared.placement, 'shared');
        const placed = await store.updateServer(shared.serverId, 1, {
          state: 'loading',
          workerName: 'modeldock-shared-0007',
        });
        assert.equal(placed.workerName, 'modeldock-shared-0007');
        assert.equal(placed.placement, 'shared');
        assert.equal(server.placement, 'dedicated', 'dedicated unless said otherwise');
        await store.updateServer(placed.serverId, placed.version, { state: 'terminating' });
        const ended = await store.getServer(placed.serverId);
        await store.updateServer(placed.serverId, ended!.version, { state: 'terminated' });
      });

      it('updateServer applies the patch and increments the version', async () => {
        const updated = await store.updateServer(server.serverId, 1, {
          state: 'loading',
          workerId: 'abc123',
          endpoint: 'http://127.0.0.1:1234',
        });
        assert.equal(updated.version, 2);
        assert.equal(updated.state, 'loading');
        assert.equal(updated.workerId, 'abc123');
        assert.equal(updated.endpoint, 'http://127.0.0.1:1234');
        assert.equal(updated.model, 'm-131', 'untouched fields stay');
        assert.equal(updated.createdAt, server.createdAt);
        assert.ok(updated.updatedAt >= server.updatedAt, 'updatedAt moves forward');
        assert.deepEqual(
          await store.getServer(server.serverId),
          updated,
          'what it returns is what is stored',
        );
        server = updated;
      });

      it('an update based on a stale read fails and changes nothing', async () => {
        await assert.rejects(store.updateServer(server.serverId, 1, { state: 'failed' }), StaleVersionError);
        assert.deepEqual(await store.getServer(server.serverId), server);
      });

      it('of concurrent updates from the same read, exactly one wins', async () => {
        const other = await fixture.second();
        try {
          const results = await Promise.allSettled(
            Array.from({ length: 10 }, (_, i) =>
              (i % 2 ? other : store).updateServer(server.serverId, server.version, {
                reason: `writer ${i}`,
              }),
            ),
          );
          const won = results.filter((r) => r.status === 'fulfilled');
          assert.equal(won.length, 1, 'one winner');
          for (const r of results) {
            if (r.status === 'rejected') assert.ok(r.reason instanceof StaleVersionError, String(r.reason));
          }
          const final = (await store.getServer(server.serverId))!;
          assert.equal(final.version, server.version + 1);
          assert.equal(final.reason, (won[0] as PromiseFulfilledResult<ServerRecord>).value.reason);
          server = final;
        } finally {
          await other.close();
        }
      });

      it('nulls and timestamps round-trip', async () => {
        const now = new Date().toISOString();
        const updated = await store.updateServer(server.serverId, server.version, {
          state: 'ready',
          loadedAt: now,
          lastUsedAt: now,
          reason: null,
          restarts: 2,
        });
        assert.equal(updated.loadedAt, now);
        assert.equal(updated.reason, null);
        assert.equal(updated.restarts, 2);
        assert.deepEqual(await store.getServer(server.serverId), updated);
        server = updated;
      });

      it('unknown server: get is undefined, update is NotFound', async () => {
        assert.equal(await store.getServer('inf-999999'), undefined);
        await assert.rejects(store.updateServer('inf-999999', 1, { state: 'ready' }), NotFoundError);
      });

      it('currentServer is the newest job server of the job, temp servers aside; history stays', async () => {
        const terminated = await store.updateServer(server.serverId, server.version, {
          state: 'terminated',
          terminatedAt: new Date().toISOString(),
        });
        const newer = await store.insertServer(serverInput(await store.allocateServerNumber()));
        await store.insertServer(serverInput(await store.allocateServerNumber(), { kind: 'temp' }));
        const current = await store.currentServer('a1');
        assert.equal(current?.serverId, newer.serverId);
        assert.equal((await store.getServer(terminated.serverId))!.state, 'terminated', 'history kept');
        assert.equal(await store.currentServer('nobody'), undefined);
      });

      it('listServers filters by job, kind and states, ordered by number', async () => {
        await store.insertServer(
          serverInput(await store.allocateServerNumber(), { jobId: 'other', state: 'ready' }),
        );
        const all = await store.listServers();
        assert.deepEqual(
          all.map((s) => s.number),
          [...all.map((s) => s.number)].sort((a, b) => a - b),
        );
        const forJob = await store.listServers({ jobId: 'a1' });
        assert.ok(forJob.length >= 3 && forJob.every((s) => s.jobId === 'a1'));
        const temps = await store.listServers({ kind: 'temp' });
        assert.ok(temps.length >= 1 && temps.every((s) => s.kind === 'temp'));
        const live = await store.listServers({ states: ['creating', 'ready'] });
        assert.ok(live.every((s) => s.state === 'creating' || s.state === 'ready'));
        assert.ok(live.some((s) => s.jobId === 'other'));
        assert.deepEqual(await store.listServers({ states: [] }), []);
      });
    });

    describe('operations', () => {
      it('insert, update and get round-trip steps, warnings and errors', async () => {
        const op = operation('op-1', { warnings: ['container_id "aa" was ignored'] });
        await store.insertOperation(op);
        assert.deepEqual(await store.getOperation('op-1'), op);
        const steps = [
          { name: 'create' as const, startedAt: new Date().toISOString(), durationMs: 61.25 },
          { name: 'start' as const, startedAt: new Date().toISOString(), durationMs: 402.5 },
        ];
        const finished = await store.updateOperation('op-1', {
          status: 'failed',
          serverId: 'inf-0001',
          steps,
          error: { code: 'timeout', message: 'not ready' },
          finishedAt: new Date().toISOString(),
          durationMs: 470.75,
        });
        assert.equal(finished.status, 'failed');
        assert.deepEqual(finished.steps, steps);
        assert.deepEqual(finished.error, { code: 'timeout', message: 'not ready' });
        assert.deepEqual(finished.warnings, op.warnings);
        assert.equal(finished.durationMs, 470.75);
        assert.deepEqual(await store.getOperation('op-1'), finished);
      });

      it('refuses a duplicate id; unknown ids are undefined / NotFound', async () => {
        await assert.rejects(store.insertOperation(operation('op-1')), ConflictError);
        assert.equal(await store.getOperation('op-none'), undefined);
        await assert.rejects(store.updateOperation('op-none', { status: 'succeeded' }), NotFoundError);
      });

      it('lists newest first, with filters and a limit', async () => {
        for (let i = 2; i <= 6; i++) {
          await store.insertOperation(
            operation(`op-${i}`, {
              jobId: i % 2 ? 'a1' : 'b1',
              type: i === 6 ? 'TEMP' : 'DEPLOY_LOAD',
              status: i === 5 ? 'running' : 'succeeded',
            }),
          );
        }
        const all = await store.listOperations();
        assert.deepEqual(
          all.slice(0, 6).map((o) => o.operationId),
          ['op-6', 'op-5', 'op-4', 'op-3', 'op-2', 'op-1'],
        );
        assert.deepEqual(
          (await store.listOperations({ limit: 2 })).map((o) => o.operationId),
          ['op-6', 'op-5'],
        );
        assert.deepEqual(
          (await store.listOperations({ jobId: 'b1' })).map((o) => o.operationId),
          ['op-6', 'op-4', 'op-2'],
        );
        assert.deepEqual(
          (await store.listOperations({ status: 'running' })).map((o) => o.operationId),
          ['op-5'],
        );
        assert.deepEqual(
          (await store.listOperations({ type: 'TEMP' })).map((o) => o.operationId),
          ['op-6'],
        );
        assert.deepEqual(
          (await store.listOperations({ serverId: 'inf-0001' })).map((o) => o.operationId),
          ['op-1'],
        );
      });
    });

    describe('transactions', () => {
      it('keep every write made in them, and return what the work returns', async () => {
        const { number, id } = await store.transaction(async () => {
          const number = await store.allocateServerNumber();
          const server = await store.insertServer(serverInput(number, { jobId: 'tx1' }));
          await store.insertOperation(operation('op-tx-1', { jobId: 'tx1', serverId: server.serverId }));
          await store.updateOperation('op-tx-1', { status: 'succeeded' });
          return { number, id: server.serverId };
        });
        assert.equal((await store.getServer(id))?.number, number);
        const op = await store.getOperation('op-tx-1');
        assert.equal(op?.status, 'succeeded');
        assert.equal(op?.serverId, id);
      });

      it('pass a failure through, keeping what was written before it; conditional updates still decide', async () => {
        const number = await store.allocateServerNumber();
        await assert.rejects(
          store.transaction(async () => {
            await store.insertServer(serverInput(number, { jobId: 'tx2' }));
            await store.insertOperation(operation('op-tx-2', { jobId: 'tx2' }));
            // Version 1 was just inserted: an update that read version 7 is stale.
            await store.updateServer(formatServerId(number), 7, { state: 'loading' });
          }),
          StaleVersionError,
        );
        assert.equal((await store.getServer(formatServerId(number)))?.state, 'creating');
        assert.equal((await store.getOperation('op-tx-2'))?.status, 'running');
      });

      it('join the transaction they run in', async () => {
        await store.transaction(async () => {
          await store.insertOperation(operation('op-tx-3'));
          await store.transaction(() => store.updateOperation('op-tx-3', { status: 'failed' }));
          assert.equal((await store.getOperation('op-tx-3'))?.status, 'failed');
        });
        assert.equal((await store.getOperation('op-tx-3'))?.status, 'failed');
      });

      it('run beside each other and beside plain calls: every one finishes, no number twice', async () => {
        const claim = (i: number) =>
          store.transaction(async () => {
            const number = await store.allocateServerNumber();
            await store.insertServer(serverInput(number, { jobId: `tx-many-${i}` }));
            await store.insertOperation(operation(`op-tx-many-${i}`, { jobId: `tx-many-${i}` }));
            return number;
          });
        const results = await Promise.all([
          ...Array.from({ length: 12 }, (_, i) => claim(i)),
          ...Array.from({ length: 6 }, () => store.allocateServerNumber()),
        ]);
        assert.equal(new Set(results).size, results.length);
        for (let i = 0; i < 12; i++) {
          assert.equal((await store.listServers({ jobId: `tx-many-${i}` })).length, 1);
          assert.equal((await store.getOperation(`op-tx-many-${i}`))?.jobId, `tx-many-${i}`);
        }
      });
    });

    it('keeps everything across close and reopen', async () => {
      const before = await store.listServers();
      await store.close();
      store = await fixture.second();
      fixture.store = store;
      assert.deepEqual(await store.listServers(), before);
      assert.equal((await store.getJob('a1'))!.model, 'm-131');
    });
  });
}
