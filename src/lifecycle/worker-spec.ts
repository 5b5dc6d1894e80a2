/**
 * What the router gives every worker it creates besides its name and labels, through
 * WorkerSpec.env so that every runtime passes it on: a secret of its own (the worker obeys
 * only whoever holds it), the request body limit its memory allows, the allocator
 * setting that makes its memory measurable per model and the intra-op threads its CPU
 * limit allows; and, for a model a foreign serving
 * runtime serves, the command that starts that server instead.
 */
import { LABELS, type ServerImage, type WorkerLimits, type WorkerSpec } from '../runtime/runtime.js';
import {
  WORKER_ALLOCATOR_ENV,
  WORKER_BODY_LIMIT_ENV,
  WORKER_THREADS_ENV,
  workerBodyLimit,
  workerThreads,
} from '../worker-limits.js';
import { WORKER_SECRET_ENV, generateWorkerSecret } from '../worker-secret.js';
import type { ServingRuntime } from './serving-runtimes.js';

export function workerSpec(
  name: string,
  labels: Record<string, string>,
  limits: WorkerLimits,
  serving?: ServingRuntime,
): WorkerSpec {
  const image = serving && !serving.modeldockWorker ? serverImage(serving) : undefined;
  return {
    name,
    labels,
    limits,
    env: {
      [WORKER_SECRET_ENV]: generateWorkerSecret(),
      [WORKER_BODY_LIMIT_ENV]: String(workerBodyLimit(limits.memoryBytes)),
      ...(serving && !serving.modeldockWorker
        ? {}
        : { ...WORKER_ALLOCATOR_ENV, [WORKER_THREADS_ENV]: String(workerThreads(limits.nanoCpus)) }),
    },
    // A foreign server is started by its catalog entry's command (process runtime) or
    // image (containers) instead of modeldock's worker.
    ...(serving && !serving.modeldockWorker && serving.process ? { server: serving.process } : {}),
    ...(image ? { serverImage: image } : {}),
    // A foreign server for no job yet (the warm pool's): its model comes when it is taken.
    ...(serving && !serving.modeldockWorker && labels[LABELS.job] === undefined
      ? { emptyRepository: true }
      : {}),
  };
}

/** How a container runtime runs the entry: its image, with its `container` command or else its `process` one. */
function serverImage(serving: ServingRuntime): ServerImage | undefined {
  const command = serving.container ?? serving.process;
  if (!serving.image || !command) return undefined;
  return {
    image: serving.image,
    command,
    ports: serving.ports,
    ...(serving.execDir ? { execDir: serving.execDir } : {}),
  };
}
