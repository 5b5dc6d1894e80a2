/**
 * A file fetched from the router's store, written as it streams in and hashed on the way
 * (remote-store-source.ts for the worker's cache, model-dir-fetch.ts for a foreign
 * server's repository): the bytes are read once, and the caller compares what was
 * written with the digest it was promised before it keeps anything. Node's own modules
 * only: the guard imports it, and its start-up stays lean.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Stream `body` into `target`, a new file (never over an existing one) with `mode`;
 * fails once more than `maxBytes` arrive. Resolves with the bytes' SHA-256 (hex) and count.
 */
export async function writeHashed(
  body: Readable,
  target: string,
  mode: number,
  maxBytes = Infinity,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    body,
    new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size > maxBytes) return done(new Error(`more than the ${maxBytes} bytes listed`));
        hash.update(chunk);
        done(null, chunk);
      },
    }),
    createWriteStream(target, { flags: 'wx', mode }),
  );
  return { sha256: hash.digest('hex'), size };
}
