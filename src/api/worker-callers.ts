/**
 * Who calls the worker-store endpoint: a worker this router runs, known by its own
 * secret (worker-secret.ts). The secrets already live where the runtime put them, in
 * each worker's environment (a Pod's spec, a container's configuration), so the router
 * looks the presented secret up among its running workers instead of keeping secrets of
 * its own: nothing new is stored, a restarted router knows its workers again from the
 * runtime, and a removed worker's secret stops opening anything once the runtime no
 * longer lists it (at the next refresh, at most MAX_AGE_MS later).
 *
 * (Per-worker secrets derived by HMAC from a router key would need no lookup, but the key
 * would have to outlive the router exactly as long as its workers do, and a secret
 * derived from a reused worker name would stay valid after its worker was gone.)
 *
 * Known secrets are held as SHA-256 digests, so a lookup's timing says nothing about a
 * secret. An unknown one makes the router list its workers again — a worker started a
 * moment ago must be let in — but at most once per MIN_REFRESH_MS, shared by everyone
 * waiting, so strangers cannot make it hammer the runtime.
 */
import { hash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Runtime } from '../runtime/runtime.js';

const MIN_REFRESH_MS = 200;
const MAX_AGE_MS = 30_000;

export class WorkerCallers {
  /** Digest of a running worker's secret → its name. */
  private known = new Map<string, string>();
  /** Looks at the runtime started so far; `known` comes from look number `knownFrom`, taken at `knownAt`. */
  private started = 0;
  private knownFrom = 0;
  private knownAt = 0;
  private lastStart = 0;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly runtime: Runtime) {}

  /** The name of the running worker whose secret this is; undefined for anyone else. */
  async identify(secret: string | string[] | undefined): Promise<string | undefined> {
    if (typeof secret !== 'string' || secret === '') return undefined;
    const digest = hash('sha256', secret, 'hex');
    // Looks begun before this request may have missed a worker that started since.
    const arrival = this.started;
    if (Date.now() - this.knownAt > MAX_AGE_MS) await this.refreshAfter(arrival);
    const name = this.known.get(digest);
    if (name !== undefined) return name;
    // Not among the workers known so far: ask the runtime (once) for the ones there now.
    await this.refreshAfter(arrival);
    return this.known.get(digest);
  }

  /** Resolves once `known` comes from a look begun after look number `arrival`. */
  private async refreshAfter(arrival: number): Promise<void> {
    while (this.knownFrom <= arrival) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined));
      await this.refreshing;
    }
  }

  private async refresh(): Promise<void> {
    const wait = this.lastStart + MIN_REFRESH_MS - Date.now();
    if (wait > 0) await delay(wait);
    this.lastStart = Date.now();
    const number = ++this.started;
    const next = new Map<string, string>();
    for (const worker of await this.runtime.list()) {
      if (!worker.running || !worker.endpoint) continue;
      const secret = this.runtime.workerSecret?.(worker.endpoint);
      if (secret) next.set(hash('sha256', secret, 'hex'), worker.name);
    }
    this.known = next;
    this.knownFrom = number;
    this.knownAt = this.lastStart;
  }
}
