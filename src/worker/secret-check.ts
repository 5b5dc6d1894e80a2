/**
 * The worker secret's check on a worker's HTTP API (src/worker-secret.ts), shared by
 * modeldock's worker (app.ts) and the guard in front of a foreign server (guard.ts), so
 * both obey the same callers the same way: only the health checks answer without it.
 */
import type { FastifyInstance } from 'fastify';
import { WORKER_SECRET_HEADER, secretMatches } from '../worker-secret.js';

/** Health checks answer anyone: engines and probes hold no secret. */
export const OPEN_PATHS = new Set(['/v2/health/live', '/v2/health/ready']);

/** Refuses (401) every call but the health checks that does not carry `secret`. */
export function requireWorkerSecret(app: FastifyInstance, secret: string): void {
  // Before the body is read: a caller without the secret costs no parsing.
  app.addHook('onRequest', async (request, reply) => {
    if (OPEN_PATHS.has(request.url.split('?')[0]!)) return;
    if (secretMatches(secret, request.headers[WORKER_SECRET_HEADER])) return;
    return reply.code(401).send({
      error: `this worker answers only its router: missing or wrong ${WORKER_SECRET_HEADER} header`,
    });
  });
}
