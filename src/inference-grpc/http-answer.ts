/**
 * A worker's HTTP error answer (`{"error": "<message>"}`, the protocol's form) as the
 * typed error its status means, so the gRPC edge gives it the matching gRPC status:
 * the router for the worker's answers, the worker for its own routes.
 */
import { ConflictError, InvalidInputError, ModeldockError, NotFoundError, WorkerError } from '../errors.js';

export function httpAnswerError(statusCode: number, bytes: Buffer | string): Error {
  let message = `worker answered ${statusCode}`;
  try {
    const parsed = JSON.parse(bytes.toString()) as { error?: unknown };
    if (parsed?.error !== undefined) message = String(parsed.error);
  } catch {
    // not JSON: keep the status
  }
  if (statusCode === 400 || statusCode === 422) return new InvalidInputError(message);
  if (statusCode === 404) return new NotFoundError(message);
  if (statusCode === 409) return new ConflictError(message);
  if (statusCode === 413) return new ModeldockError('payload_too_large', message);
  return new WorkerError(message, { status: statusCode });
}
