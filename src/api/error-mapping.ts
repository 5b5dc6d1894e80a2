/**
 * The one place where errors become HTTP answers: `{"error": {"code", "message"}}` with
 * a fitting status, and never a stack trace. Under `/v2` the same errors take the Open
 * Inference Protocol's form, `{"error": "<message>"}`, which its clients parse.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, NotReadyError, isModeldockError } from '../errors.js';

const STATUS: Record<ErrorCode, number> = {
  invalid_input: 400,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
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
    return {
      status: STATUS[error.code],
      body: { error: { code: error.code, message: error.message, ...(error.details ?? {}) } },
      // A server still loading: the client is told when to come back (RFC 9110 §10.2.3).
      ...(error instanceof NotReadyError
        ? { headers: { 'retry-after': String(error.retryAfterSeconds) } }
        : {}),
    };
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    return {
      status: 400,
      body: { error: { code: 'invalid_input', message: `invalid request: ${fastifyError.message}` } },
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
