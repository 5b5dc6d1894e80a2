/**
 * The HTTP door of auth: every request passes `onRequest` here before routing decides
 * anything else, so a stranger gets 401 (with `WWW-Authenticate: Bearer`) whether or not
 * the job, or even the route, exists; a valid key of the wrong scope gets 403. Each
 * route's handler then runs as its caller (lifecycle/caller.ts), which is how operation
 * records name who asked.
 */
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../errors.js';
import { asCaller } from '../lifecycle/caller.js';
import { ANONYMOUS, accessOf, type Caller, type KeyRing } from './auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request (ANONYMOUS when no key is asked for); set by the auth hook. */
    caller: Caller;
  }
}

export const WWW_AUTHENTICATE = 'Bearer realm="modeldock"';

/** Installs the hook and the caller context; call before any route is registered. */
export function installAuth(
  app: FastifyInstance,
  keys: KeyRing,
  options: {
    metricsPublic: boolean;
    /** Told of every refusal (a counter: refusals are logged at debug only). */
    refused?: (reason: 'unauthenticated' | 'forbidden') => void;
  },
): void {
  app.decorateRequest('caller', null as unknown as Caller);

  const hook: onRequestHookHandler = (request, reply, done) => {
    const decision = keys.authorize(
      request.headers.authorization,
      accessOf(request.routeOptions.url, options),
    );
    if (decision.ok) {
      request.caller = decision.caller;
      done();
      return;
    }
    request.caller = ANONYMOUS;
    options.refused?.(decision.status === 401 ? 'unauthenticated' : 'forbidden');
    if (decision.status === 401) {
      void reply.header('www-authenticate', WWW_AUTHENTICATE);
      done(new UnauthorizedError(decision.message));
    } else done(new ForbiddenError(decision.message));
  };
  app.addHook('onRequest', hook);

  app.addHook('onRoute', (route) => {
    const handler = route.handler;
    route.handler = function (request, reply) {
      return asCaller(request.caller.id, () => handler.call(this, request, reply));
    };
  });
}
