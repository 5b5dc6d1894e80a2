/**
 * The store as the router serves it (worker-store-protocol.ts), for workers with no
 * store on a file system of their own (MODELDOCK_K8S_STORE=router): each file is fetched
 * into the Pod's cache directory, checked against the SHA-256 the router sends, and
 * opened from there like a local file.
 *
 * The cache is content-addressed: `blobs/<sha256 hex>` holds the bytes, and
 * `<models|datasets>/<id>/<file>` is a symbolic link to its blob, so the link names the
 * digest of what is cached. Every fetch asks the router with If-None-Match: unchanged
 * (304) reuses the blob without a byte sent; changed (200) fetches the new one.
 *
 * Nothing half-written is ever used: the bytes go to a `.partial-*` file while they are
 * hashed, and only a complete file whose digest matches is renamed to its blob name; a
 * mismatch (a file changed or damaged on its way) deletes it and fails the load. The
 * link is replaced atomically (a new link renamed over the old one), and a blob no link
 * names any more is deleted, so the cache holds what is in use.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { request } from 'undici';
import { InvalidInputError, StoreUnavailableError, errorMessage } from '../errors.js';
import { ID_PATTERN, validateId } from '../ids.js';
import { WORKER_SECRET_HEADER } from '../worker-secret.js';
import {
  STORE_DIRS,
  STORE_FILES,
  WORKER_STORE_PREFIX,
  etagOf,
  sha256OfReprDigest,
  storeFilePath,
  type StoreKind,
} from '../worker-store-protocol.js';
import { writeHashed } from './hashed-write.js';
import type { StoreSource } from './store-source.js';
import { isMissing, realPathInside } from './store-files.js';

export interface RemoteStoreOptions {
  /** The router's base URL as this worker reaches it (MODELDOCK_STORE_URL). */
  url: string;
  /** This worker's own secret: the router serves its store to its workers only. */
  secret: string;
  /** The Pod's cache (an emptyDir): written by this worker alone. */
  cacheDir: string;
  logger?: Logger;
}

const BLOBS = 'blobs';
const PARTIAL = '.partial-';
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What the cache did, since the worker started (the worker's stats report it). */
export interface CacheCounts {
  /** Files downloaded (absent from the cache, or changed in the router's store). */
  fetched: number;
  /** Files the router confirmed unchanged (304): used from the cache, nothing sent. */
  reused: number;
}

export class RemoteStoreSource implements StoreSource {
  readonly counts: CacheCounts = { fetched: 0, reused: 0 };
  /** One fetch per file at a time: concurrent loads of one model share it. */
  private readonly inFlight = new Map<string, Promise<string | undefined>>();
  /** Serializes the cache's renames and deletions (a blob is never deleted while being linked). */
  private cacheLock: Promise<unknown> = Promise.resolve();
  private readonly base: URL;

  constructor(private readonly options: RemoteStoreOptions) {
    if (!options.secret) {
      throw new InvalidInputError(
        'fetching the store from the router needs the worker secret (MODELDOCK_WORKER_SECRET)',
      );
    }
    this.base = new URL(options.url);
  }

  get description(): string {
    return `${this.base.origin}${WORKER_STORE_PREFIX}, cached in ${this.options.cacheDir}`;
  }

  async file(kind: StoreKind, id: string, file: string): Promise<string | undefined> {
    validateId(kind, id);
    if (!STORE_FILES[kind].includes(file)) throw new InvalidInputError(`${file} is no ${kind} store file`);
    const key = `${kind}/${id}/${file}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    const promise = this.fetchFile(kind, id, file).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return promise;
  }

  /** Best effort within a second: the repository index is also the router's liveness check. */
  async listModels(): Promise<string[]> {
    try {
      const response = await request(new URL(`${WORKER_STORE_PREFIX}/models`, this.base), {
        headers: { [WORKER_SECRET_HEADER]: this.options.secret },
        headersTimeout: 1_000,
        bodyTimeout: 1_000,
      });
      if (response.statusCode !== 200) {
        await response.body.dump();
        return [];
      }
      const ids = (await response.body.json()) as unknown;
      return Array.isArray(ids)
        ? ids.filter((id): id is string => typeof id === 'string' && ID_PATTERN.test(id))
        : [];
    } catch (error) {
      this.options.logger?.warn({ err: errorMessage(error) }, 'model list from the router failed');
      return [];
    }
  }

  private async fetchFile(kind: StoreKind, id: string, file: string): Promise<string | undefined> {
    const relative = path.join(STORE_DIRS[kind], id, file);
    const link = path.join(this.options.cacheDir, relative);
    const what = `${kind} "${id}" ${file}`;
    const cached = await this.cachedDigest(link);
    let response;
    try {
      response = await request(new URL(storeFilePath(kind, id, file), this.base), {
        headers: {
          [WORKER_SECRET_HEADER]: this.options.secret,
          ...(cached ? { 'if-none-match': etagOf(cached) } : {}),
        },
        headersTimeout: 30_000,
        bodyTimeout: 60_000,
      });
    } catch (error) {
      throw new StoreUnavailableError(
        `the router's store at ${this.base.origin} does not answer for ${what}: ${errorMessage(error)}`,
      );
    }
    const { statusCode, headers, body } = response;
    if (statusCode === 304 && cached) {
      await body.dump();
      try {
        const real = await realPathInside(this.options.cacheDir, relative, kind);
        this.counts.reused += 1;
        return real;
      } catch (error) {
        if (!isMissing(error)) throw error;
        // The blob is gone (it never should be): forget the link and fetch it whole.
        await this.locked(() => rm(link, { force: true }));
        return this.fetchFile(kind, id, file);
      }
    }
    if (statusCode === 404) {
      await body.dump();
      // Gone from the router's store: gone from the cache too.
      if (cached) await this.locked(() => this.replaceLink(link, undefined, cached));
      return undefined;
    }
    if (statusCode !== 200) {
      const text = (await body.text().catch(() => '')).slice(0, 300);
      const refused = statusCode === 401 ? ": the router does not know this worker's secret" : '';
      throw new StoreUnavailableError(
        `the router's store answered ${statusCode} for ${what}${refused} (${text})`,
      );
    }
    const expected = sha256OfReprDigest(headers['repr-digest']);
    if (!expected) {
      await body.dump();
      throw new StoreUnavailableError(`the router sent ${what} without a sha-256 Repr-Digest: refused`);
    }
    const blobs = path.join(this.options.cacheDir, BLOBS);
    await mkdir(blobs, { recursive: true });
    const partial = path.join(blobs, `${PARTIAL}${randomBytes(8).toString('hex')}`);
    let received: string;
    try {
      received = (await writeHashed(body, partial, 0o600)).sha256;
    } catch (error) {
      await rm(partial, { force: true });
      throw new StoreUnavailableError(`fetching ${what} from the router broke off: ${errorMessage(error)}`);
    }
    if (received !== expected) {
      await rm(partial, { force: true });
      throw new StoreUnavailableError(
        `${what} from the router does not match its digest (sent sha-256 ${expected.slice(0, 16)}…, received ${received.slice(0, 16)}…): refused, nothing kept`,
      );
    }
    await this.locked(async () => {
      await rename(partial, path.join(blobs, received));
      await this.replaceLink(link, received, cached);
    });
    this.counts.fetched += 1;
    this.options.logger?.info({ kind, id, file, sha256: received }, 'store file fetched from the router');
    return realPathInside(this.options.cacheDir, relative, kind);
  }

  /** The digest the cached link names, undefined when nothing (valid) is cached. */
  private async cachedDigest(link: string): Promise<string | undefined> {
    try {
      const target = path.basename(await readlink(link));
      return SHA256_HEX.test(target) ? target : undefined;
    } catch {
      return undefined;
    }
  }

  /** Point `link` at a blob (or remove it), then delete the old blob if nothing names it. */
  private async replaceLink(
    link: string,
    digest: string | undefined,
    old: string | undefined,
  ): Promise<void> {
    if (digest) {
      await mkdir(path.dirname(link), { recursive: true });
      const fresh = `${link}${PARTIAL}${randomBytes(8).toString('hex')}`;
      await symlink(
        path.relative(path.dirname(link), path.join(this.options.cacheDir, BLOBS, digest)),
        fresh,
      );
      await rename(fresh, link);
    } else {
      await rm(link, { force: true });
    }
    if (old && old !== digest && !(await this.linkedDigests()).has(old)) {
      await rm(path.join(this.options.cacheDir, BLOBS, old), { force: true });
    }
  }

  /** Every digest a link of the cache names. */
  private async linkedDigests(): Promise<Set<string>> {
    const digests = new Set<string>();
    for (const dir of Object.values(STORE_DIRS)) {
      const root = path.join(this.options.cacheDir, dir);
      const ids = await readdir(root).catch(() => [] as string[]);
      for (const id of ids) {
        for (const file of await readdir(path.join(root, id)).catch(() => [] as string[])) {
          const digest = await this.cachedDigest(path.join(root, id, file));
          if (digest) digests.add(digest);
        }
      }
    }
    return digests;
  }

  private locked<T>(work: () => Promise<T>): Promise<T> {
    const result = this.cacheLock.then(work);
    this.cacheLock = result.catch(() => undefined);
    return result;
  }
}
