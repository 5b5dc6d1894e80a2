/**
 * The worker secret's check on a worker's HTTP API (src/worker-secret.ts), shared by
 * modeldock's worker (app.ts) and the guard in front of a foreign server (guard.ts), so
 * both obey the same callers the same way: only the health checks answer without it.
 * The check itself needs no framework (the guard runs on node:http alone); the Fastify
 * hook is the worker's.
 */
import type { FastifyInstance } from 'fastify';
import { WORKER_SECRET_HEADER, secretMatches } from '../worker-secret.js';

/** Health checks answer anyone: engines and probes hold no secret. */
export const OPEN_PATHS = new Set(['/v2/health/live', '/v2/health/ready']);

/**
 * Why a call to `url` presenting `presented` in the secret header is refused (its 401's
 * message), or undefined when it may pass.
 */
export function secretRefusal(
  secret: string,
  url: string,
  presented: string | string[] | undefined,
): string | undefined {
  if (OPEN_PATHS.has(url.split('?')[0]!)) return undefined;
  if (secretMatches(secret, presented)) return undefined;
  return `this worker answers only its router: missing or wrong ${WORKER_SECRET_HEADER} header`;
}

/** Refuses (401) every call but the health checks that does not carry `secret`. */
export function requireWorkerSecret(app: FastifyInstance, secret: string): void {
  // Before the body is read: a caller without the secret costs no parsing.
  app.addHook('onRequest', async (request, reply) => {
    const refusal = secretRefusal(secret, request.url, request.headers[WORKER_SECRET_HEADER]);
    if (refusal) return reply.code(401).send({ error: refusal });
  });
}
