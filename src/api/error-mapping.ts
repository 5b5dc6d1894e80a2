/**
 * The one place where errors become HTTP answers: `{"error": {"code", "message"}}` with
 * a fitting status, and never a stack trace. Under `/v2` the same errors take the Open
 * Inference Protocol's form, `{"error": "<message>"}`, which its clients parse.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, NotReadyError, TooManyRequestsError, isModeldockError } from '../errors.js';
import { ID_PATTERN_SOURCE, ID_RULE } from '../ids.js';

const STATUS: Record<ErrorCode, number> = {
  invalid_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  quota_exceeded: 429,
  too_many_requests: 429,
  runtime_unavailable: 503,
  store_unavailable: 503,
  worker_error: 502,
  timeout: 504,
  not_ready: 503,
  internal: 500,
};

export interface ErrorBody {
  error: { code: string; message: string; [key: string]: unknown };
}

export function toErrorResponse(error: unknown): {
  status: number;
  body: ErrorBody;
  headers?: Record<string, string>;
} {
  if (isModeldockError(error)) {
    const retryAfter =
      error instanceof NotReadyError || error instanceof TooManyRequestsError
        ? error.retryAfterSeconds
        : undefined;
    return {
      status: STATUS[error.code],
      body: { error: { code: error.code, message: error.message, ...(error.details ?? {}) } },
      // A server still loading, or the router busy: the client is told when to come back
      // (RFC 9110 §10.2.3).
      ...(retryAfter !== undefined ? { headers: { 'retry-after': String(retryAfter) } } : {}),
    };
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const first = fastifyError.validation[0];
    // An id refused by its schema pattern gets validateId's words, not the regular expression.
    const message =
      first?.keyword === 'pattern' && first.params.pattern === ID_PATTERN_SOURCE
        ? `${fastifyError.validationContext ?? 'request'}${first.instancePath.replaceAll('/', '.').replace(/^\./, '/')} ${ID_RULE}`
        : fastifyError.message;
    return {
      status: 400,
      body: { error: { code: 'invalid_input', message: `invalid request: ${message}` } },
    };
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        body: { error: { code: 'payload_too_large', message: 'request body too large' } },
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        body: { error: { code: 'unsupported_media_type', message: 'send the body as application/json' } },
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: { error: { code: 'invalid_input', message: 'the JSON body is empty' } } };
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return { status, body: { error: { code: 'invalid_input', message: fastifyError.message } } };
  }
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}

/** An error as the Open Inference Protocol answers it: the same status, `{"error": "<message>"}`. */
export function toProtocolErrorResponse(error: unknown): {
  status: number;
  body: { error: string };
  headers?: Record<string, string>;
} {
  const { status, body, headers } = toErrorResponse(error);
  return { status, body: { error: body.error.message }, ...(headers ? { headers } : {}) };
}

function logError(request: FastifyRequest, error: unknown, status: number, body: ErrorBody): void {
  // Only unexpected failures deserve a stack in the log; a 503 says what is away.
  if (status === 500) request.log.error({ err: error }, 'request failed');
  else if (status >= 500)
    request.log.warn({ code: body.error.code, reason: body.error.message }, 'request failed');
  // Anyone can make the router refuse them, so a refusal without a valid key (or for
  // being busy) is no line at info: strangers would fill the log. They are counted
  // (modeldock_refused_requests_total) instead.
  else if (status === 401 || body.error.code === 'too_many_requests')
    request.log.debug({ code: body.error.code, reason: body.error.message }, 'request rejected');
  else request.log.info({ code: body.error.code, reason: body.error.message }, 'request rejected');
}

export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, headers } = toErrorResponse(error);
  logError(request, error, status, body);
  if (headers) void reply.headers(headers);
  void reply.code(status).send(body);
}

/** `/v2`'s error handler: the protocol's error form. */
export function protocolErrorHandler(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const { status, body, headers } = toErrorResponse(error);
  logError(request, error, status, body);
  if (headers) void reply.headers(headers);
  void reply.code(status).send({ error: body.error.message });
}

export function protocolNotFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send({ error: `no route ${request.method} ${request.url.split('?')[0]}` });
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send({
    error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` },
  });
}
