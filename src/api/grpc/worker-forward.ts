/**
 * One gRPC ModelInfer call's request to the job's worker, over the worker's keep-alive
 * pool with undici's `dispatch` (as the HTTP hot path does): the answer is collected
 * whole, and the call's cancellation or deadline aborts the worker's request. Leaner than
 * `request()` (no body stream, no AbortSignal), which counts at this rate.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { TimeoutError } from '../../errors.js';
import { WORKER_ANSWER_TIMEOUT_MS } from '../../runtime/worker-client.js';

export interface WorkerAnswer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  bytes: Buffer;
}

/** What a call can be: cancelled (the client left, or grpc-js ended it at its deadline) and timed. */
export interface CancellableCall {
  once(event: 'cancelled', listener: () => void): unknown;
  removeListener(event: 'cancelled', listener: () => void): unknown;
  getDeadline(): Date | number;
}

export class CallEndedError extends TimeoutError {}

export function forwardToWorker(
  dispatcher: Dispatcher,
  options: { path: string; headers: Record<string, string>; body: Buffer },
  call: CancellableCall,
): Promise<WorkerAnswer> {
  return new Promise<WorkerAnswer>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let ended: Error | undefined;
    let timer: NodeJS.Timeout | undefined;
    const end = (reason: string) => {
      ended = new CallEndedError(reason);
      controller?.abort(ended);
    };
    const onCancelled = () => end('the call was cancelled');
    const cleanup = () => {
      call.removeListener('cancelled', onCancelled);
      if (timer) clearTimeout(timer);
    };
    call.once('cancelled', onCancelled);
    const deadline = Number(call.getDeadline());
    if (Number.isFinite(deadline)) {
      timer = setTimeout(() => end('the call’s deadline passed'), Math.max(0, deadline - Date.now()));
    }
    let statusCode = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    dispatcher.dispatch(
      {
        method: 'POST',
        path: options.path,
        headers: options.headers,
        body: options.body,
        headersTimeout: WORKER_ANSWER_TIMEOUT_MS,
        bodyTimeout: WORKER_ANSWER_TIMEOUT_MS,
      },
      {
        onRequestStart(c) {
          controller = c;
          if (ended) c.abort(ended);
        },
        onResponseStart(_c, status, responseHeaders) {
          statusCode = status;
          headers = responseHeaders as IncomingHttpHeaders;
        },
        onResponseData(_c, chunk) {
          chunks.push(chunk);
        },
        onResponseEnd() {
          cleanup();
          resolve({ statusCode, headers, bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) });
        },
        onResponseError(_c, error) {
          cleanup();
          reject(ended ?? error);
        },
      },
    );
  });
}
