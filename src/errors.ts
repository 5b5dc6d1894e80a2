/**
 * Domain errors. Every layer throws these (never raw HTTP statuses); the API maps
 * codes to HTTP exactly once, in src/api/error-mapping.ts.
 */
export type ErrorCode =
  | 'invalid_input'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'quota_exceeded'
  | 'too_many_requests'
  | 'runtime_unavailable'
  | 'store_unavailable'
  | 'worker_error'
  | 'timeout'
  | 'not_ready'
  | 'internal';

export class ModeldockError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options?.details;
  }
  readonly details: Record<string, unknown> | undefined;
}

export class InvalidInputError extends ModeldockError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('invalid_input', message, options);
  }
}

export class NotFoundError extends ModeldockError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('not_found', message, options);
  }
}

export class ConflictError extends ModeldockError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('conflict', message, options);
  }
}

/** No key, or a key that is not one of ours. */
export class UnauthorizedError extends ModeldockError {
  constructor(message: string) {
    super('unauthorized', message);
  }
}

/** A valid key whose scope does not cover the request. */
export class ForbiddenError extends ModeldockError {
  constructor(message: string) {
    super('forbidden', message);
  }
}

/** A bound against exhaustion (servers, queued creations) is reached; nothing was done. */
export class QuotaExceededError extends ModeldockError {
  constructor(message: string, options?: { details?: Record<string, unknown> }) {
    super('quota_exceeded', message, options);
  }
}

/** A conditional write lost against a newer version of the record: re-read and retry. */
export class StaleVersionError extends ConflictError {}

export class RuntimeUnavailableError extends ModeldockError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('runtime_unavailable', message, options);
  }
}

export class StoreUnavailableError extends ModeldockError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('store_unavailable', message, options);
  }
}

/** A request body over the limit: refused before the next hop sees a byte too many. */
export class PayloadTooLargeError extends ModeldockError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('payload_too_large', message, options);
  }
}

/** A bounded resource (e.g. concurrent event streams) is used up; try again later. */
export class TooManyRequestsError extends ModeldockError {
  constructor(
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown>; retryAfterSeconds?: number },
  ) {
    super('too_many_requests', message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
  /** When to send again, if that is known (the `Retry-After` header). */
  readonly retryAfterSeconds: number | undefined;
}

/** The worker answered with an error or could not be reached while it should be up. */
export class WorkerError extends ModeldockError {
  constructor(
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown>; status?: number },
  ) {
    super('worker_error', message, options);
    this.status = options?.status;
  }
  readonly status: number | undefined;
}

export class TimeoutError extends ModeldockError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('timeout', message, options);
  }
}

/**
 * The job's server did not become ready within the time a request may wait for it
 * (MODELDOCK_LOAD_WAIT_MS); the load goes on. Safe to retry after `retryAfterSeconds`.
 */
export class NotReadyError extends ModeldockError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('not_ready', message);
  }
}

export function isModeldockError(error: unknown): error is ModeldockError {
  return error instanceof ModeldockError;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
