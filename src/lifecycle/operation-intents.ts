/**
 * An operation's intent — its record as `running`, written before the operation changes
 * anything — committed together with its first change instead of as a commit of its own:
 * in one store transaction with the operation's first write, or alone just before its
 * first step that acts on a worker or the runtime, or as the finished record when it
 * ends without either. Either way the record is durable before anything it would
 * explain, and a shared DEPLOY_LOAD or EVICT saves one synced commit of its few.
 *
 * The operation runner (operation-runner.ts) runs each operation's work in the context of
 * its pending intent; the store the lifecycle writes through (`intentsFirst`) writes a
 * pending intent of the calling operation first, in the same transaction.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { OperationRecord } from '../store/records.js';
import type { Store } from '../store/store.js';

const pendingOf = new AsyncLocalStorage<PendingIntent>();

export class PendingIntent {
  /** The record not yet written; undefined once its write has begun. */
  private record: OperationRecord | undefined;
  /** The write of the record, once begun. */
  private written: Promise<void> | undefined;

  constructor(
    record: OperationRecord,
    private readonly store: Store,
  ) {
    this.record = record;
  }

  /** Whether the record is still to be written. */
  get pending(): boolean {
    return this.record !== undefined;
  }

  /** Run `work` (the operation's) with this intent pending: its first write writes the intent first. */
  run<T>(work: () => Promise<T>): Promise<T> {
    return pendingOf.run(this, work);
  }

  /** Change the record while it is not written yet (the server it acts on, found meanwhile). */
  amend(patch: Partial<OperationRecord>): void {
    if (this.record) this.record = { ...this.record, ...patch };
  }

  /** Write the intent now (alone), unless it is written already; resolves once it is. */
  async flush(): Promise<void> {
    await this.withIntent(async () => undefined);
  }

  /** `write`, after the intent — in one transaction with it while it is still pending. */
  async withIntent<T>(write: () => Promise<T>): Promise<T> {
    const record = this.record;
    if (!record) {
      // Written, or being written by a write beside this one: this one comes after it.
      await this.written;
      return write();
    }
    this.record = undefined;
    let wrote!: () => void;
    let failed!: (error: unknown) => void;
    this.written = new Promise<void>((resolve, reject) => ((wrote = resolve), (failed = reject)));
    // Awaited by the writes beside this one; a failure is this write's to throw.
    this.written.catch(() => undefined);
    try {
      return await this.store.transaction(async () => {
        await this.store.insertOperation(record);
        wrote();
        return write();
      });
    } catch (error) {
      // The intent did not make it (the transaction never began or was not committed).
      failed(error);
      throw error;
    }
  }

  /** The finished record, written at once (an operation that ended without a change) or as an update. */
  async finish(finished: OperationRecord): Promise<OperationRecord> {
    if (this.record) {
      this.record = undefined;
      this.written = this.store.insertOperation(finished);
      await this.written;
      return finished;
    }
    await this.written;
    const {
      operationId,
      type: _type,
      jobId: _jobId,
      startedAt: _startedAt,
      caller: _caller,
      ...patch
    } = finished;
    return this.store.updateOperation(operationId, patch);
  }
}

/**
 * The store with each write of an operation preceded by the operation's pending intent,
 * in the same transaction (reads and the writes of no operation pass as they are).
 */
export function intentsFirst(store: Store): Store {
  const first =
    <A extends unknown[], R>(write: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      const pending = pendingOf.getStore();
      return pending?.pending ? pending.withIntent(() => write(...args)) : write(...args);
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
    getJob: (jobId) => store.getJob(jobId),
    listJobs: () => store.listJobs(),
    allocateServerNumber: first(() => store.allocateServerNumber()),
    reserveServerNumber: first((number) => store.reserveServerNumber(number)),
    insertServer: first((server) => store.insertServer(server)),
    getServer: (serverId) => store.getServer(serverId),
    updateServer: first((serverId, version, patch) => store.updateServer(serverId, version, patch)),
    listServers: (filter) => store.listServers(filter),
    currentServer: (jobId) => store.currentServer(jobId),
    insertOperation: first((op) => store.insertOperation(op)),
    updateOperation: first((operationId, patch) => store.updateOperation(operationId, patch)),
    getOperation: (operationId) => store.getOperation(operationId),
    listOperations: (filter) => store.listOperations(filter),
  };
}
