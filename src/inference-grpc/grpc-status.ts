/**
 * Errors as gRPC statuses: the gRPC edge's counterpart of error-mapping.ts, from the same
 * typed errors, with the message as the status details and never a stack.
 */
import { status as Status, type StatusObject } from '@grpc/grpc-js';
import { type ErrorCode, isModeldockError } from '../errors.js';

const CODES: Record<ErrorCode, Status> = {
  invalid_input: Status.INVALID_ARGUMENT,
  unauthorized: Status.UNAUTHENTICATED,
  forbidden: Status.PERMISSION_DENIED,
  not_found: Status.NOT_FOUND,
  // The job's state does not allow it now (another model, no live server, a failed server).
  conflict: Status.FAILED_PRECONDITION,
  payload_too_large: Status.RESOURCE_EXHAUSTED,
  too_many_requests: Status.RESOURCE_EXHAUSTED,
  quota_exceeded: Status.RESOURCE_EXHAUSTED,
  runtime_unavailable: Status.UNAVAILABLE,
  store_unavailable: Status.UNAVAILABLE,
  worker_error: Status.UNAVAILABLE,
  timeout: Status.DEADLINE_EXCEEDED,
  // The job's server is still being loaded: the caller may try again (as HTTP's 503).
  not_ready: Status.UNAVAILABLE,
  internal: Status.INTERNAL,
};

export function toGrpcStatus(error: unknown): Partial<StatusObject> & { code: Status; details: string } {
  if (isModeldockError(error)) return { code: CODES[error.code], details: error.message };
  return { code: Status.INTERNAL, details: 'internal error' };
}
