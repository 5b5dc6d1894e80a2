/**
 * The secret a worker obeys: the router generates one per worker, the runtime hands it
 * to the worker in its environment, and every call to the worker except its health
 * checks carries it in a header. Shared by the router (runtimes, worker client, proxies)
 * and the worker program, so both sides spell it the same way.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** The environment variable a worker reads its secret from. */
export const WORKER_SECRET_ENV = 'MODELDOCK_WORKER_SECRET';
/** The request header the router sends the secret in (never forwarded from clients). */
export const WORKER_SECRET_HEADER = 'x-modeldock-worker-secret';

/** 256 random bits, URL-safe. */
export function generateWorkerSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** A fixed-length digest of each side, so the comparison takes the same time whatever was sent. */
export function secretMatches(expected: string, given: string | string[] | undefined): boolean {
  if (typeof given !== 'string') return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(expected), digest(given));
}

/** The environment of a worker spec with a secret in it: the spec's own, or a new one. */
export function withWorkerSecret(env: Record<string, string> | undefined): Record<string, string> {
  const own = env ?? {};
  return own[WORKER_SECRET_ENV] ? own : { ...own, [WORKER_SECRET_ENV]: generateWorkerSecret() };
}
