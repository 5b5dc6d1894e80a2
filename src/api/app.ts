/**
 * Builds the router's HTTP app from its dependencies without listening, so tests call
 * it in-process (`app.inject`) and the entry point decides where it listens.
 */
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import http from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Catalog } from '../lifecycle/catalog.js';
import type { EventBus } from '../lifecycle/event-bus.js';
import type { Lifecycle } from '../lifecycle/lifecycle.js';
import type { Metrics } from '../observability/metrics.js';
import type { Runtime } from '../runtime/runtime.js';
import type { WorkerClient } from '../runtime/worker-client.js';
import type { Store } from '../store/store.js';
import type { KeyRing } from './auth.js';
import { installAuth } from './auth-hook.js';
import { errorHandler, notFoundHandler } from './error-mapping.js';
import { answerExpectations } from './expect-continue.js';
import { inferFastPath } from './infer-fast-path.js';
import { budgetOf, routerBudgets } from './request-budgets.js';
import { installRequestBudget } from '../request-budget.js';
import { installMethodNotAllowed } from './method-not-allowed.js';
import { openapiOptions } from './openapi.js';
import { readinessProbe } from './readiness.js';
import { setSecurityHeaders } from './security-headers.js';
import { healthRoutes } from './routes/health.js';
import { originalRoutes } from './routes/original.js';
import { v1Routes } from './routes/v1.js';
import { v2Routes } from './routes/v2.js';
import { consoleRoutes } from './routes/console.js';
import { workerStoreRoutes } from './routes/worker-store.js';

export interface AppDeps {
  lifecycle: Lifecycle;
  store: Store;
  runtime: Runtime;
  workers: WorkerClient;
  catalog: Catalog;
  events: EventBus;
  metrics: Metrics;
  logger: Logger;
  bodyLimitBytes: number;
  /** Request bytes held at once per budget, inference and administration apart (request-budgets.ts). */
  requestMemoryBytes: number;
  /** How long a request may take to arrive whole (Node's requestTimeout). */
  bodyTimeoutMs: number;
  /** Most /v1/events streams open at once. */
  maxEventStreams?: number;
  version: string;
  /** The API keys (a KeyRing without keys when none are asked for). */
  keys: KeyRing;
  /** `/metrics` answers without a key. */
  metricsPublic: boolean;
  /** Run a full reconcile pass now (operators, benchmarks); resolves with its report. */
  reconcile: () => Promise<unknown>;
}

/** How long idle kept-alive connections stay open once the router is shutting down. */
const IDLE_CONNECTION_GRACE_MS = 1_000;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  let closing = false;
  const budgets = routerBudgets(deps.requestMemoryBytes);
  const fastPath = inferFastPath({
    lifecycle: deps.lifecycle,
    workers: deps.workers,
    metrics: deps.metrics,
    bodyLimitBytes: deps.bodyLimitBytes,
    admits: (authorization) => deps.keys.authorize(authorization, 'infer').ok,
    budget: budgets.inference,
  });
  const app = Fastify({
    // Routed inference for ready jobs is answered before Fastify (see infer-fast-path.ts);
    // `inject` in tests bypasses the server and so always exercises the Fastify routes.
    serverFactory: (handler) => {
      const dispatch = (request: http.IncomingMessage, response: http.ServerResponse) => {
        // Shutting down: requests already on a kept-alive connection are still served
        // (the router finishes what it has), and their answer closes the connection.
        if (closing) response.shouldKeepAlive = false;
        setSecurityHeaders(response);
        if (!fastPath(request, response)) handler(request, response);
      };
      const server = http.createServer(dispatch);
      answerExpectations(server, deps.bodyLimitBytes, dispatch, (authorization) => {
        // Every route that takes a body needs a key; which scope, the route decides.
        const decision = deps.keys.authorize(authorization, 'authenticated');
        if (decision.ok) return undefined;
        deps.metrics.refusedRequests.inc({ protocol: 'http', reason: 'unauthenticated' });
        return decision.message;
      });
      // Fastify's own defaults for a server it creates itself.
      server.keepAliveTimeout = 72_000;
      // A request that trickles in is cut (408) instead of holding its buffers for Node's 5 minutes.
      server.requestTimeout = deps.bodyTimeoutMs;
      return server;
    },
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimitBytes,
    // Ids are up to 128 characters (and get a clear 400 beyond); Fastify's default of 100 would answer 414 first.
    routerOptions: { maxParamLength: 16 * 1024 },
    // Per-request log lines would dominate the hot path; errors are logged by the handler.
    logController: new LogController({ disableRequestLogging: true }),
    // Wrong types are errors, not something to coerce: `"job_id": 7` is a 400.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    // Closing drains instead (see serverFactory): what reaches us is served, politely.
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // First, so every route (and the 404 handler) sees it: 401 before anything else.
  installAuth(app, deps.keys, {
    metricsPublic: deps.metricsPublic,
    refused: (reason) => deps.metrics.refusedRequests.inc({ protocol: 'http', reason }),
  });
  // After the key check: a stranger is refused before any budget is looked at.
  installRequestBudget(
    app,
    (request) => budgetOf(budgets, request),
    () => deps.metrics.refusedRequests.inc({ protocol: 'http', reason: 'busy' }),
  );
  installMethodNotAllowed(app);
  // The API speaks JSON only; other bodies get a clear 415 instead of a confusing 400.
  app.removeContentTypeParser('text/plain');
  app.addHook('preClose', async () => {
    closing = true;
    const server = app.server;
    // A connection that goes idle from now on is closed soon rather than kept for the
    // keep-alive timeout: the router is leaving, and close() waits for every connection.
    server.keepAliveTimeout = 500;
    // server.close() would also close idle kept-alive connections at once, cutting a
    // request a client is sending on one right then. They get a moment first: what
    // arrives is served (with Connection: close), then whatever is still idle is closed.
    const closeIdleConnections = server.closeIdleConnections.bind(server);
    server.closeIdleConnections = () => undefined;
    setTimeout(closeIdleConnections, IDLE_CONNECTION_GRACE_MS).unref();
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  await app.register(
    swagger,
    openapiOptions({ version: deps.version, auth: deps.keys.enabled, metricsPublic: deps.metricsPublic }),
  );

  const readiness = readinessProbe(deps);
  await app.register(healthRoutes({ readiness, metrics: deps.metrics }));
  await app.register(originalRoutes(deps.lifecycle));
  await app.register(v1Routes({ ...deps, requestBudgets: budgets }), { prefix: '/v1' });
  await app.register(v2Routes({ ...deps, readiness }), { prefix: '/v2' });
  await app.register(consoleRoutes());
  await app.register(workerStoreRoutes(deps));

  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.ready();
  return app;
}
