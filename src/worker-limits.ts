/**
 * How big a request a worker takes, derived from its memory limit. Shared by the router
 * (which passes the limit to every worker it starts, through WorkerSpec.env) and the
 * worker program (its default when started by hand).
 *
 * Why a fraction of memory: a JSON request of n bytes costs the worker about
 * REQUEST_COST_MULTIPLE × n at its peak (the body, the parsed JSON tree, the typed array
 * fed to ONNX Runtime and the answer; docs/worker.md has the measurement), on top of the
 * worker's idle memory and its loaded models. A quarter of the memory is what requests may
 * take; the rest is the runtime and the models'.
 */

/** Peak bytes of worker memory per byte of the worst JSON request, measured (docs/worker.md). */
export const REQUEST_COST_MULTIPLE = 8;

/** The environment variable a worker reads its body limit from. */
export const WORKER_BODY_LIMIT_ENV = 'MODELDOCK_WORKER_BODY_LIMIT';

/** A worker started without MODELDOCK_WORKER_BODY_LIMIT: what a 1 GiB worker would get. */
export const DEFAULT_WORKER_BODY_LIMIT = workerBodyLimit(1024 ** 3);

/** The largest request body a worker with `memoryBytes` of memory accepts (at least 1 MiB). */
export function workerBodyLimit(memoryBytes: number): number {
  return Math.max(1024 ** 2, Math.floor(memoryBytes / 4 / REQUEST_COST_MULTIPLE));
}
