/** Liveness, readiness (store and runtime answer) and Prometheus metrics. */
import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../../observability/metrics.js';
import type { ReadinessProbe } from '../readiness.js';

export function healthRoutes(deps: { readiness: ReadinessProbe; metrics: Metrics }): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', { schema: { tags: ['health'] } }, async () => ({ status: 'ok' }));

    app.get('/readyz', { schema: { tags: ['health'] } }, async (_request, reply) => {
      const { ready, checks } = await deps.readiness();
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks });
    });

    app.get('/metrics', { schema: { tags: ['health'] } }, async (_request, reply) => {
      const body = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(body);
    });
  };
}
