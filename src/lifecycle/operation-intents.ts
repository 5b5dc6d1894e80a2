/**
 * An operation's writes held until they must be durable, then committed together: its
 * intent — its record as `running`, written before the operation changes anything — and
 * the state changes of its shared servers (`hold`), which the router acts on from memory
 * at once. They are written, in one store transaction, with the operation's next store
 * call (a write, or a read, which so sees them), or just before its next step that acts on
 * a worker or the runtime, or with its finished record. So the record and each state are
 * durable before the worker is touched and before the answer, and a shared load on demand
 * commits twice (intent and `loading` before the load; `ready` and the finish after it)
 * instead of four times; a placement no longer holds the fleet's turn through a commit.
 *
 * The operation runner (operation-runner.ts) runs each operation's work in the context of
 * its pending writes; the store the lifecycle calls through (`intentsFirst`) writes what
 * the calling operation holds first, in the same transaction.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { OperationRecord } from '../store/records.js';
import type { Store } from '../store/store.js';

const pendingOf = new AsyncLocalStorage<PendingIntent>();

export class PendingIntent {
  /** The record not yet written; undefined once its write has begun. */
  private record: OperationRecord | undefined;
  /** State changes held, in order, until the next flush. */
  private held: (() => Promise<unknown>)[] = [];
  /** The last flush, once begun: the operation's later calls come after it. */
  private flushed: Promise<void> = Promise.resolve();

  constructor(
    record: OperationRecord,
    private readonly store: Store,
  ) {
    this.record = record;
  }

  /** Whether anything is still to be written. */
  get pending(): boolean {
    return this.record !== undefined || this.held.length > 0;
  }

  /** Run `work` (the operation's) with these writes pending: its next store call writes them first. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return pendingOf.run(this, work);
  }

  /**
   * Change the record while it is not written yet (the server it acts on, found
   * meanwhile); false when it is written already (then the caller updates it).
   */
  amend(patch: Partial<OperationRecord>): boolean {
    if (!this.record) return false;
    this.record = { ...this.record, ...patch };
    return true;
  }

  /**
   * Hold a write (a conditional state change whose result the caller already knows) until
   * the operation's next flush. A write that fails then fails the call that flushed it.
   */
  hold(write: () => Promise<unknown>): void {
    this.held.push(write);
  }

  /** Write what is pending now (alone); resolves once it is. */
  async flush(): Promise<void> {
    await this.withIntent(async () => undefined);
  }

  /** `call`, after what is pending — in one transaction with it. */
  async withIntent<T>(call: () => Promise<T>): Promise<T> {
    if (!this.pending) {
      // Written, or being written by a call beside this one: this one comes after it.
      await this.flushed;
      return call();
    }
    const record = this.record;
    const held = this.held;
    this.record = undefined;
    this.held = [];
    const before = this.flushed;
    let wrote!: () => void;
    let failed!: (error: unknown) => void;
    this.flushed = new Promise<void>((resolve, reject) => ((wrote = resolve), (failed = reject)));
    // Awaited by the calls beside this one; a failure is this call's to throw.
    this.flushed.catch(() => undefined);
    try {
      await before;
      return await this.store.transaction(async () => {
        if (record) await this.store.insertOperation(record);
        for (const write of held) await write();
        wrote();
        return call();
      });
    } catch (error) {
      // What was pending did not all make it (a write refused, or no commit).
      failed(error);
      throw error;
    }
  }

  /** The finished record, with whatever is still pending, in one transaction. */
  async finish(finished: OperationRecord): Promise<OperationRecord> {
    const {
      operationId,
      type: _type,
      jobId: _jobId,
      startedAt: _startedAt,
      caller: _caller,
      ...patch
    } = finished;
    return this.withIntent(() => this.store.updateOperation(operationId, patch));
  }
}

/**
 * The store with each call of an operation preceded by what the operation holds, in the
 * same transaction (the calls of no operation pass as they are).
 */
export function intentsFirst(store: Store): Store {
  const first =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      const pending = pendingOf.getStore();
      return pending?.pending ? pending.withIntent(() => call(...args)) : call(...args);
    };
  return {
    get kind() {
      return store.kind;
    },
    init: () => store.init(),
    close: () => store.close(),
    ping: () => store.ping(),
    transaction: (work) => store.transaction(work),
    ensureJob: first((job) => store.ensureJob(job)),
    updateJob: first((jobId, patch) => store.updateJob(jobId, patch)),
    getJob: first((jobId) => store.getJob(jobId)),
    listJobs: first(() => store.listJobs()),
    allocateServerNumber: first(() => store.allocateServerNumber()),
    reserveServerNumber: first((number) => store.reserveServerNumber(number)),
    insertServer: first((server) => store.insertServer(server)),
    getServer: first((serverId) => store.getServer(serverId)),
    updateServer: first((serverId, version, patch) => store.updateServer(serverId, version, patch)),
    listServers: first((filter) => store.listServers(filter)),
    currentServer: first((jobId) => store.currentServer(jobId)),
    insertOperation: first((op) => store.insertOperation(op)),
    updateOperation: first((operationId, patch) => store.updateOperation(operationId, patch)),
    getOperation: first((operationId) => store.getOperation(operationId)),
    listOperations: first((filter) => store.listOperations(filter)),
  };
}
