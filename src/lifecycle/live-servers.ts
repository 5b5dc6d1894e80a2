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
 */
import type { ServerRecord, ServerState } from '../store/records.js';
import type { Store } from '../store/store.js';
import { LIVE_STATES } from './state-machine.js';

const LIVE: ReadonlySet<ServerState> = new Set(LIVE_STATES);

export class LiveServers {
  private readonly byId = new Map<string, ServerRecord>();
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

  /** A record as this router just wrote it (inserted, updated, adopted). */
  track(server: ServerRecord): void {
    const known = this.byId.get(server.serverId);
    // Two writes to one record answered out of order: the newer version stays.
    if (known && known.version > server.version) return;
    this.told.set(server.serverId, ++this.sequence);
    if (LIVE.has(server.state)) this.byId.set(server.serverId, server);
    else this.byId.delete(server.serverId);
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
      this.byId.set(server.serverId, server);
    }
    for (const serverId of [...this.byId.keys()]) {
      if (!seen.has(serverId) && !newer(serverId)) this.byId.delete(serverId);
    }
    // Only writes newer than the read still matter for the next one.
    for (const [serverId, sequence] of this.told) if (sequence <= mark) this.told.delete(serverId);
    this.loading ??= Promise.resolve();
  }

  private async readStore(): Promise<void> {
    const mark = this.mark();
    const stored = await this.store.listServers({ states: LIVE_STATES });
    this.refresh(stored, mark);
  }
}
