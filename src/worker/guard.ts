/**
 * The guard in front of a foreign inference server (Triton, MLServer, an operator's own):
 * such a server cannot check modeldock's worker secret, so the guard takes the worker's
 * place on the port the router calls and forwards to the server, which listens on
 * loopback only. It obeys the same callers as modeldock's worker (secret-check.ts: the
 * secret, or a health check), holds the same body limit (one body at most, the bodies
 * in flight together at most, request-budget.ts), and passes everything else on
 * unchanged. docs/security.md says what it protects.
 */
import type { ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import { endToEndHeaders } from '../end-to-end-headers.js';
import { TooManyRequestsError, errorMessage } from '../errors.js';
import { ByteBudget, installRequestBudget } from '../request-budget.js';
import { DEFAULT_WORKER_BODY_LIMIT } from '../worker-limits.js';
import { GUARD_STATS_PATH, guardStats } from './guard-stats.js';
import { requireWorkerSecret } from './secret-check.js';

export interface GuardOptions {
  /** The server behind the guard, e.g. `http://127.0.0.1:8080`. */
  upstream: string;
  /** What callers must present; empty: open (a guard started by hand). */
  secret?: string;
  bodyLimitBytes?: number;
  logger?: Logger;
  /** The worker's name, in its stats. */
  name?: string;
}

export function buildGuardApp(options: GuardOptions): FastifyInstance {
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_WORKER_BODY_LIMIT;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger as never } : {}),
    bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
  });
  // Bodies are passed on as they came, whatever their type: read whole (bounded by the
  // body limit, 413 past it) so that a refused caller never reaches the server.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  if (options.secret) requireWorkerSecret(app, options.secret);
  const budget = new ByteBudget('worker', bodyLimit);
  installRequestBudget(app, () => ({ budget, costPerByte: 1 }));

  const upstream = new Pool(options.upstream, { connections: 64 });
  app.addHook('onClose', async () => upstream.close());

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof TooManyRequestsError) {
      void reply.header('retry-after', String(error.retryAfterSeconds ?? 1));
      return reply.code(503).send({ error: error.message });
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500)
      return reply.code(status).send({ error: errorMessage(error) });
    request.log.error({ err: error }, 'guard request failed');
    return reply.code(500).send({ error: 'internal error' });
  });

  // Answered here, not by the server: the worker's CPU and memory (guard-stats.ts).
  app.get(GUARD_STATS_PATH, () => guardStats(options.name ?? 'guard'));

  app.all('/*', async (request, reply) => {
    const forward = () =>
      upstream.request({
        path: request.url,
        method: request.method as 'GET',
        headers: endToEndHeaders(request.headers),
        body: Buffer.isBuffer(request.body) ? request.body : null,
        signal: abandonedWith(reply.raw),
      });
    let answer: Awaited<ReturnType<Pool['request']>>;
    try {
      // A kept-alive connection the server has just closed (as servers do after an
      // error answer they sent before reading the whole body) fails before any answer:
      // the request, held whole here, goes once more, on a new connection.
      answer = await forward().catch((error: unknown) => {
        if (!closedUnderfoot(error)) throw error;
        return forward();
      });
    } catch (error) {
      // Starting, or gone: the router's readiness poll reads this as "not ready yet".
      return reply
        .code(503)
        .send({ error: `the server behind this guard does not answer: ${errorMessage(error)}` });
    }
    return reply.code(answer.statusCode).headers(endToEndHeaders(answer.headers)).send(answer.body);
  });
  return app;
}

/** The connection was closed by the server before it answered (not: refused, aborted). */
function closedUnderfoot(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE';
}

/** Aborted when the caller goes away before its answer is out: the server's work is no longer wanted. */
function abandonedWith(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) controller.abort();
  });
  return controller.signal;
}
