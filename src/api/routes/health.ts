/** Liveness, readiness (store and runtime answer) and Prometheus metrics. */
import type { FastifyPluginAsync } from 'fastify';
import { errorMessage } from '../../errors.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Runtime } from '../../runtime/runtime.js';
import type { Store } from '../../store/store.js';

export function healthRoutes(deps: { store: Store; runtime: Runtime; metrics: Metrics }): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', { schema: { tags: ['health'] } }, async () => ({ status: 'ok' }));

    app.get('/readyz', { schema: { tags: ['health'] } }, async (_request, reply) => {
      const checks = await Promise.all([
        deps.store.ping().then(
          () => ({ name: 'store', ok: true }),
          (error: unknown) => ({ name: 'store', ok: false, message: errorMessage(error) }),
        ),
        deps.runtime.ping(AbortSignal.timeout(2_000)).then(
          () => ({ name: 'runtime', ok: true }),
          (error: unknown) => ({ name: 'runtime', ok: false, message: errorMessage(error) }),
        ),
      ]);
      const ready = checks.every((c) => c.ok);
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks });
    });

    app.get('/metrics', { schema: { tags: ['health'] } }, async (_request, reply) => {
      const body = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(body);
    });
  };
}
