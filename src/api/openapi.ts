/**
 * The OpenAPI document: what each route answers, exactly. Routes declare their request
 * schemas (which Fastify validates with); this module adds, for the document only, what
 * every route can answer beyond its success — the statuses of the auth hook (401/403),
 * validation (400), lookups (404), conflicts (409), body limits (413/415), quotas (429),
 * workers (502/504) and an absent store or engine (503) — and the bearer security scheme
 * when keys are asked for. Serialization is untouched: nothing here filters an answer.
 *
 * Schemathesis checks the document against the running router (test/e2e/api-fuzz.test.ts).
 */
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifySchema } from 'fastify';
import { ID_PATTERN_SOURCE } from '../ids.js';
import { accessOf } from './auth.js';

export interface OpenapiOptions {
  version: string;
  /** Keys are asked for: routes carry the bearer scheme and their 401/403. */
  auth: boolean;
  metricsPublic: boolean;
}

const ERROR_OBJECT = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  additionalProperties: true,
};

/** `{"error": {"code", "message"}}`; on /v2 the protocol's `{"error": "<message>"}` is accepted too. */
function errorSchema(v2: boolean, description: string) {
  return {
    description,
    type: 'object',
    required: ['error'],
    properties: { error: v2 ? { anyOf: [{ type: 'string' }, ERROR_OBJECT] } : ERROR_OBJECT },
  };
}

const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request (JSON error)',
  401: 'Missing or invalid key (WWW-Authenticate: Bearer)',
  403: 'The key’s scope does not cover this request',
  404: 'No such job, server, operation, model or dataset',
  409: 'Conflicts with the job’s current state',
  413: 'Request body too large (MODELDOCK_BODY_LIMIT)',
  415: 'Send the body as application/json',
  429: 'A quota is reached (MODELDOCK_MAX_SERVERS, MODELDOCK_CREATE_QUEUE); nothing was done',
  502: 'The job’s worker did not answer',
  503: 'The store or the runtime is unavailable, or the router is shutting down',
  504: 'The worker did not become ready in time',
};

/** Routes that create a server (and so meet the quotas). */
const CREATES = new Set([
  'POST /inference_router/',
  'POST /inference_router',
  'POST /v1/jobs',
  'POST /v1/temp',
]);

/** What a route can answer, beyond what it declares itself. */
export function statusesOf(
  method: string,
  url: string,
  schema: FastifySchema,
  options: OpenapiOptions,
): number[] {
  const access = accessOf(url, options);
  const key = `${method} ${url}`;
  const hasParams = url.includes(':');
  const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
  const v2 = url.startsWith('/v2/');
  const statuses = new Set<number>();
  if (options.auth && access !== 'open') statuses.add(401);
  if (options.auth && access === 'admin') statuses.add(403);
  if (url === '/readyz' || url === '/v2/health/ready') statuses.add(503);
  if (access === 'open') return [...statuses];
  statuses.add(503);
  if (hasParams || schema.querystring || schema.body || hasBody) statuses.add(400);
  if (hasParams || schema.body || CREATES.has(key)) statuses.add(404);
  if (hasBody) statuses.add(413);
  // /v2 takes any content type (bodies go to the worker unparsed); elsewhere JSON only.
  if (hasBody && !v2 && schema.body) statuses.add(415);
  const reads = method === 'GET' || method === 'HEAD';
  // Routes that run an operation or reach the job's worker (a /v2 model route loads on demand).
  const operation =
    CREATES.has(key) ||
    (!reads && /^\/v1\/jobs\/:job_id(\/(load|unload|terminate|infer))?$/.test(url)) ||
    (url.startsWith('/v2/models/:job') && url !== '/v2/models/:job/ready') ||
    url.startsWith('/v2/repository/models/');
  if (operation) {
    statuses.add(409);
    statuses.add(502);
    statuses.add(504);
  }
  if (CREATES.has(key)) statuses.add(429);
  return [...statuses];
}

/** Successes that are not JSON. */
const SUCCESS: Record<string, unknown> = {
  '/metrics': {
    description: 'Prometheus text format',
    content: { 'text/plain': { schema: { type: 'string' } } },
  },
  '/v1/events': {
    description: 'Server-sent events',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  },
};

/** The protocol answers "not ready" with 400 and `{name, ready: false}`; a bad id is a 400 too. */
const NOT_READY = {
  description: 'The job’s server is not ready (or the id is invalid)',
  type: 'object',
  properties: {
    name: { type: 'string' },
    ready: { type: 'boolean' },
    error: { anyOf: [{ type: 'string' }, ERROR_OBJECT] },
  },
};

const PARAM_SCHEMA = { type: 'string', pattern: ID_PATTERN_SOURCE };

/** The /v2 routes stream to the worker and declare no schema of their own: their parameters, for the document. */
function v2Params(url: string, schema: FastifySchema): FastifySchema {
  if (!url.startsWith('/v2/') || !url.includes(':job') || schema.params) return schema;
  return { ...schema, params: { type: 'object', required: ['job'], properties: { job: PARAM_SCHEMA } } };
}

/**
 * The route schemas are JSON Schema as Ajv validates them (draft 7: `exclusiveMinimum` is a
 * number); OpenAPI 3.0 wants the draft 4 form (`minimum` with a boolean `exclusiveMinimum`),
 * and clients that read the document refuse the other. The document gets that form.
 */
function asOpenApi30(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(asOpenApi30);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) out[key] = asOpenApi30(value);
  for (const [exclusive, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof out[exclusive] === 'number') {
      out[bound] = out[exclusive];
      out[exclusive] = true;
    }
  }
  return out;
}

export function openapiOptions(options: OpenapiOptions): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'modeldock router',
        version: options.version,
        description:
          'Control plane for AI model serving on Docker: the original POC endpoint, a resource API (/v1) and the Open Inference Protocol (/v2).',
      },
      ...(options.auth
        ? {
            components: {
              securitySchemes: {
                bearer: {
                  type: 'http',
                  scheme: 'bearer',
                  description: 'An admin or infer key (docs/security.md)',
                },
              },
            },
          }
        : {}),
    },
    // HEAD answers wherever GET does; documented, so `Allow` and the document agree.
    exposeHeadRoutes: true,
    transform: ({ schema, url, route }) => {
      // `/v2` and `/v2/` are one route (a prefixed `/`); the document shows it once, as `/v2/`.
      if (url === '/v2') return { url, schema: { ...schema, hide: true } };
      const method = Array.isArray(route.method) ? route.method[0]! : route.method;
      const own = (schema ?? {}) as FastifySchema & { response?: Record<string, unknown> };
      const { produces, ...documented } = v2Params(url, own) as FastifySchema & {
        response?: Record<string, unknown>;
        security?: unknown;
        produces?: string[];
      };
      const response: Record<string, unknown> = { ...(own.response ?? {}) };
      if (!Object.keys(response).some((code) => code.startsWith('2'))) {
        // `produces` names the success's media type only: errors stay JSON.
        response[200] =
          SUCCESS[url] ??
          (produces?.length
            ? { description: 'Success', content: { [produces[0]!]: { schema: { type: 'string' } } } }
            : { description: 'Success' });
      }
      if (url === '/v2/models/:job/ready') response[400] = NOT_READY;
      for (const status of statusesOf(method, url, own, options)) {
        response[status] ??= errorSchema(url.startsWith('/v2/'), DESCRIPTIONS[status]!);
      }
      const access = accessOf(url, options);
      return {
        url,
        schema: asOpenApi30({
          ...documented,
          response,
          ...(options.auth ? { security: access === 'open' ? [] : [{ bearer: [] }] } : {}),
        }) as FastifySchema,
      };
    },
  };
}
