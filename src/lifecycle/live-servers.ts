/**
 * The live server records as this router last wrote or read them, in memory: what the
 * creation bound (MODELDOCK_MAX_SERVERS), the shared jobs' bound and shared placement
 * count on. Reading every live record from the store for each of those decisions cost
 * tens of milliseconds per decision at 10,000 jobs (benchmark density.bench.ts).
 *
 * The store stays the truth. The view is read from it at first use; every record this
 * router writes passes through it (ServerSteps tracks each insert and update as it
 * returns); and the reconciler's full pass hands it what the store holds, which replaces
 * whatever the view had — except a record this router wrote after that read began,
 * which is newer than what the read saw.
 *
 * Beside every live record it keeps two indexes, updated with each record it is told
 * about: the models on each shared worker, and the records not placed shared. Under
 * churn at 10,000 jobs most live records are evicted (`unloaded`) shared ones, and a
 * placement or a budget check scanning all of them several times per load on demand was
 * a large part of the router's time (density bench, CPU profile); with the indexes it
 * reads only what it decides on.
 */
import type { ServerRecord, ServerState } from '../store/records.js';
import type { Store } from '../store/store.js';
import { LIVE_STATES } from './state-machine.js';

const LIVE: ReadonlySet<ServerState> = new Set(LIVE_STATES);

/** States in which a server's model is on its shared worker, or on its way there or out. */
const HOSTING_STATES: ReadonlySet<ServerState> = new Set([
  'creating',
  'loading',
  'ready',
  'unloading',
  'terminating',
]);

/** Whether a live record holds a model on a shared worker (its `workerName`) now. */
export function isHostedShared(server: ServerRecord): boolean {
  return server.placement === 'shared' && server.workerName !== '' && HOSTING_STATES.has(server.state);
}

export class LiveServers {
  private readonly byId = new Map<string, ServerRecord>();
  /** Per shared worker, the records hosted on it (isHostedShared), by server id. */
  private readonly hostedBy = new Map<string, Map<string, ServerRecord>>();
  /** Per shared worker, hostedBy's records in number order, until one of them changes. */
  private readonly sortedHosted = new Map<string, readonly ServerRecord[]>();
  /** Where each hosted record of hostedBy is (its worker), by server id. */
  private readonly hostedOn = new Map<string, string>();
  /** The live records not placed shared (dedicated servers, TEMPs on a worker of their own). */
  private readonly unshared = new Map<string, ServerRecord>();
  /** Per server id, the write (a sequence number) that last told the view about it. */
  private readonly told = new Map<string, number>();
  private sequence = 0;
  private loading: Promise<void> | undefined;

  constructor(private readonly store: Pick<Store, 'listServers'>) {}

  /** The live records, read from the store once before first use. */
  async list(): Promise<Iterable<ServerRecord>> {
    // A failed read (the store unavailable) is tried again by the next caller.
    await (this.loading ??= this.readStore().catch((error: unknown) => {
      this.loading = undefined;
      throw error;
    }));
    return this.byId.values();
  }

  /**
   * Per shared worker, the records whose models it hosts (isHostedShared) in number order,
   * as the store lists them; read from the store once before first use. A worker's list is
   * sorted again only after one of its records changed.
   */
  async hostedByWorker(): Promise<ReadonlyMap<string, readonly ServerRecord[]>> {
    await this.list();
    const byWorker = new Map<string, readonly ServerRecord[]>();
    for (const [worker, hosted] of this.hostedBy) {
      let sorted = this.sortedHosted.get(worker);
      if (!sorted) {
        sorted = [...hosted.values()].sort((a, b) => a.number - b.number);
        this.sortedHosted.set(worker, sorted);
      }
      byWorker.set(worker, sorted);
    }
    return byWorker;
  }

  /** How many models shared workers host now (each worker's hostedByWorker together). */
  async hostedCount(): Promise<number> {
    await this.list();
    return this.hostedOn.size;
  }

  /** The live records not placed shared, read from the store once before first use. */
  async notShared(): Promise<Iterable<ServerRecord>> {
    await this.list();
    return this.unshared.values();
  }

  /** A record as this router just wrote it (inserted, updated, adopted). */
  track(server: ServerRecord): void {
    const known = this.byId.get(server.serverId);
    // Two writes to one record answered out of order: the newer version stays.
    if (known && known.version > server.version) return;
    this.told.set(server.serverId, ++this.sequence);
    if (LIVE.has(server.state)) this.put(server);
    else this.drop(server.serverId);
  }

  /** Whether the view holds this very version of the record (nothing this router wrote since replaced it). */
  holds(server: ServerRecord): boolean {
    return this.byId.get(server.serverId)?.version === server.version;
  }

  /** Call before reading the store for `refresh`: what is tracked after it is newer than that read. */
  mark(): number {
    return this.sequence;
  }

  /** What the store held (every live record, read after `mark`): the view becomes that, but for newer writes. */
  refresh(stored: readonly ServerRecord[], mark: number): void {
    const newer = (serverId: string) => (this.told.get(serverId) ?? 0) > mark;
    const seen = new Set<string>();
    for (const server of stored) {
      seen.add(server.serverId);
      if (newer(server.serverId)) continue;
      const known = this.byId.get(server.serverId);
      if (known && known.version > server.version) continue;
      this.put(server);
    }
    for (const serverId of [...this.byId.keys()]) {
      if (!seen.has(serverId) && !newer(serverId)) this.drop(serverId);
    }
    // Only writes newer than the read still matter for the next one.
    for (const [serverId, sequence] of this.told) if (sequence <= mark) this.told.delete(serverId);
    this.loading ??= Promise.resolve();
  }

  /** A live record, in the view and in the index it belongs to (out of the one it left). */
  private put(server: ServerRecord): void {
    this.drop(server.serverId);
    this.byId.set(server.serverId, server);
    if (server.placement !== 'shared') this.unshared.set(server.serverId, server);
    else if (isHostedShared(server)) {
      let hosted = this.hostedBy.get(server.workerName);
      if (!hosted) this.hostedBy.set(server.workerName, (hosted = new Map()));
      hosted.set(server.serverId, server);
      this.hostedOn.set(server.serverId, server.workerName);
      this.sortedHosted.delete(server.workerName);
    }
  }

  private drop(serverId: string): void {
    this.byId.delete(serverId);
    this.unshared.delete(serverId);
    const worker = this.hostedOn.get(serverId);
    if (worker === undefined) return;
    this.hostedOn.delete(serverId);
    this.sortedHosted.delete(worker);
    const hosted = this.hostedBy.get(worker);
    hosted?.delete(serverId);
    if (hosted?.size === 0) this.hostedBy.delete(worker);
  }

  private async readStore(): Promise<void> {
    const mark = this.mark();
    const stored = await this.store.listServers({ states: LIVE_STATES });
    this.refresh(stored, mark);
  }
}
