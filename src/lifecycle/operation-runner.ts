/**
 * How every operation runs: recorded before anything happens (the intent), each step
 * timed, then finished as succeeded or failed; a failure is rethrown carrying the
 * operation's id so the caller can point at the record.
 */
import { ModeldockError, errorMessage } from '../errors.js';
import type { OperationRecord, OperationType, ServerRecord } from '../store/records.js';
import type { LifecycleContext } from './lifecycle-context.js';
import type { JobRequest, OperationOutcome } from './lifecycle-types.js';
import { OperationRecorder, newOperationId } from './operation-recorder.js';

/** An operation failed after it was recorded: the error plus the record that says so. */
export class OperationFailedError extends ModeldockError {
  constructor(
    readonly original: ModeldockError,
    readonly operation: OperationRecord,
  ) {
    super(original.code, original.message, {
      cause: original,
      details: { ...original.details, operation_id: operation.operationId },
    });
  }
}

export type OperationWork = (
  rec: OperationRecorder,
) => Promise<{ server: ServerRecord | null; servers?: ServerRecord[]; result?: unknown }>;

/**
 * Records the operation around `work`. On failure the server (if any) has already been
 * marked failed by the step that failed (server-steps.ts), and the error is rethrown
 * carrying the operation id.
 */
export async function runOperation(
  ctx: LifecycleContext,
  type: OperationType,
  request: JobRequest,
  server: ServerRecord | undefined,
  reason: string,
  work: OperationWork,
): Promise<OperationOutcome> {
  const { deps, activeOperations } = ctx;
  const warnings = containerIdWarnings(request, server);
  // Registered as active before the record exists, so a concurrent reconcile pass
  // never mistakes it for one a crash interrupted.
  const operationId = newOperationId();
  activeOperations.add(operationId);
  let rec: OperationRecorder;
  try {
    rec = await OperationRecorder.begin(deps, {
      operationId,
      type,
      jobId: request.jobId,
      reason,
      warnings,
      ...(server ? { serverId: server.serverId } : {}),
    });
  } catch (error) {
    activeOperations.delete(operationId);
    throw error;
  }
  try {
    // Its first write carries the intent (operation-intents.ts).
    const { server: after, servers, result } = await rec.intent.run(() => work(rec));
    // The server it ended on is named by the finishing write, not one of its own.
    const operation = await rec.succeed(after?.serverId);
    return {
      operation,
      server: after,
      ...(servers === undefined ? {} : { servers }),
      ...(result === undefined ? {} : { result }),
    };
  } catch (error) {
    const domainError =
      error instanceof ModeldockError
        ? error
        : new ModeldockError('internal', errorMessage(error), { cause: error });
    deps.logger.warn(
      { operationId: rec.id, type, jobId: request.jobId, err: domainError.message },
      'operation failed',
    );
    const operation = await rec.fail(domainError).catch(() => rec.current);
    throw new OperationFailedError(domainError, operation);
  } finally {
    activeOperations.delete(operationId);
  }
}

/** The original payload carries a container_id; it is never acted on, only reported. */
function containerIdWarnings(request: JobRequest, server: ServerRecord | undefined): string[] {
  const given = request.containerId;
  if (given === undefined || given === null || given === '') return [];
  if (server && (given === server.workerName || (given.length >= 12 && server.workerId?.startsWith(given)))) {
    return [];
  }
  const shown = given.length > 80 ? `${given.slice(0, 80)}…` : given;
  const own = server
    ? `its server is ${server.serverId} (container ${server.workerName}${server.workerId ? `, id ${server.workerId.slice(0, 12)}` : ''})`
    : 'it has no server yet';
  return [
    `container_id "${shown}" does not name job ${request.jobId}'s container and was ignored: modeldock finds a job's server by job_id; ${own}`,
  ];
}
