/**
 * The router's body limit on the paths that stream a body to a worker instead of letting
 * Fastify buffer it (`/v2/models/<job>/infer`): a declared Content-Length over the limit
 * is refused before a byte is read, and a body without one (chunked) is cut the moment it
 * would pass the limit, before that chunk goes on. Either way it is a 413, never a
 * worker failure.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { PayloadTooLargeError } from '../errors.js';

function tooLarge(limit: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`request body too large (the limit is ${limit} bytes)`);
}

/** The body-over-the-limit error in an error or what caused it (undici may wrap body errors). */
export function bodyTooLarge(error: unknown): PayloadTooLargeError | undefined {
  for (let e = error; e instanceof Error; e = e.cause) if (e instanceof PayloadTooLargeError) return e;
  return undefined;
}

/** The declared length is over the limit: throw at once. */
export function checkDeclaredLength(contentLength: string | undefined, limit: number): void {
  if (contentLength !== undefined && Number(contentLength) > limit) throw tooLarge(limit);
}

/** `payload` passed through with a byte count; one byte too many errors the stream. */
export function limitBody(payload: Readable, limit: number): Readable {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > limit) callback(tooLarge(limit));
      else callback(null, chunk);
    },
  });
  payload.on('error', (error) => counter.destroy(error));
  return payload.pipe(counter);
}
