/**
 * One file of the router's model or dataset store, opened for sending to a worker: its
 * real path confined to the store's root (confined-path.ts, the rule the worker applies
 * to its own stores), its size, and its SHA-256.
 *
 * The digest is computed from the same open file descriptor the bytes are then streamed
 * from, so what is sent is what was hashed even if the file is replaced meanwhile (a
 * rename leaves the open file as it was). A file rewritten in place while it is sent is
 * caught by the worker, which checks the digest and keeps nothing that does not match.
 * Digests are remembered per file while its inode, size and modification time stay the
 * same, so repeated fetches (conditional requests, answered 304) do not read it again;
 * the 1,000 files used last are remembered.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isMissing, realPathInside } from '../confined-path.js';
import { NotFoundError } from '../errors.js';

export interface OpenStoreFile {
  size: number;
  sha256: string;
  /** The bytes, from the start; closes the file at the end. */
  stream(): Readable;
  /** Close without sending (a 304). */
  close(): Promise<void>;
}

interface Remembered {
  key: string;
  sha256: string;
}

const MAX_REMEMBERED = 1_000;

export class StoreFiles {
  private readonly digests = new Map<string, Remembered>();

  /** Throws NotFoundError when the store has no such file (or it is no regular file). */
  async open(root: string, relative: string, store: string, what: string): Promise<OpenStoreFile> {
    let handle: FileHandle;
    let real: string;
    try {
      real = await realPathInside(root, relative, store);
      // Non-blocking, so a FIFO put in the store (or swapped in after the path was
      // resolved) opens at once and is refused below, instead of blocking this request.
      handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (error) {
      if (isMissing(error)) throw new NotFoundError(`${what} is not in the ${store} store`);
      throw error;
    }
    try {
      const stats = await handle.stat({ bigint: true });
      if (!stats.isFile()) throw new NotFoundError(`${what} is not a file in the ${store} store`);
      const key = `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}`;
      let sha256 = this.digests.get(real)?.key === key ? this.digests.get(real)!.sha256 : undefined;
      if (sha256 === undefined) {
        const hash = createHash('sha256');
        await pipeline(handle.createReadStream({ start: 0, autoClose: false }), hash);
        sha256 = hash.digest('hex');
      }
      this.remember(real, { key, sha256 });
      return {
        size: Number(stats.size),
        sha256,
        stream: () => handle.createReadStream({ start: 0, autoClose: true }),
        close: () => handle.close(),
      };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /**
   * Least recently used first out: a Map keeps insertion order, and a file used again is
   * moved to its end, so a store of more files than are remembered keeps the ones in use
   * instead of forgetting them all at once.
   */
  private remember(real: string, digest: Remembered): void {
    this.digests.delete(real);
    if (this.digests.size >= MAX_REMEMBERED) this.digests.delete(this.digests.keys().next().value!);
    this.digests.set(real, digest);
  }
}
