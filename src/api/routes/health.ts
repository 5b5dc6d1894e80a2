/** Liveness, readiness (store and runtime answer, checked at most every 2 s) and Prometheus metrics. */
import type { FastifyPluginAsync } from 'fastify';
import { errorMessage } from '../../errors.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Runtime } from '../../runtime/runtime.js';
import type { Store } from '../../store/store.js';

/** How old a /readyz answer may be (ms). */
export const READY_CHECK_MS = 2_000;

interface ReadyCheck {
  name: string;
  ok: boolean;
  message?: string;
}

function check(deps: { store: Store; runtime: Runtime }): Promise<ReadyCheck[]> {
  return Promise.all([
    deps.store.ping().then(
      () => ({ name: 'store', ok: true }),
      (error: unknown) => ({ name: 'store', ok: false, message: errorMessage(error) }),
    ),
    deps.runtime.ping(AbortSignal.timeout(2_000)).then(
      () => ({ name: 'runtime', ok: true }),
      (error: unknown) => ({ name: 'runtime', ok: false, message: errorMessage(error) }),
    ),
  ]);
}

export function healthRoutes(deps: { store: Store; runtime: Runtime; metrics: Metrics }): FastifyPluginAsync {
  // /readyz is open: asking the engine and the store on every call would let anyone
  // hammer them through the router. The answer is at most READY_CHECK_MS old, and
  // callers while a check runs share it.
  let last: { at: number; checks: Promise<ReadyCheck[]> } | undefined;
  const readiness = (): Promise<ReadyCheck[]> => {
    const now = performance.now();
    if (!last || now - last.at >= READY_CHECK_MS) last = { at: now, checks: check(deps) };
    return last.checks;
  };
  return async (app) => {
    app.get('/healthz', { schema: { tags: ['health'] } }, async () => ({ status: 'ok' }));

    app.get('/readyz', { schema: { tags: ['health'] } }, async (_request, reply) => {
      const checks = await readiness();
      const ready = checks.every((c) => c.ok);
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', checks });
    });

    app.get('/metrics', { schema: { tags: ['health'] } }, async (_request, reply) => {
      const body = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(body);
    });
  };
}
