/**
 * 405 with `Allow` for a method no route serves on a path that routes do serve, answered
 * in `onRequest` (after auth), before Fastify would parse a body the request should not
 * have had (a `QUERY` without Content-Type would otherwise be a confusing 400).
 */
import type { FastifyInstance } from 'fastify';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** The methods routes serve on `path` (a concrete path, without the query). */
export function allowedMethods(app: FastifyInstance, path: string): string[] {
  return METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
}

export function installMethodNotAllowed(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.url !== undefined) return done();
    const path = request.url.split('?')[0]!;
    const allowed = allowedMethods(request.server, path);
    if (allowed.length === 0) return done();
    void reply
      .code(405)
      .header('allow', allowed.join(', '))
      .send({
        error: {
          code: 'method_not_allowed',
          message: `${request.method} is not allowed on ${path}; use ${allowed.join(', ')}`,
        },
      });
  });
}
