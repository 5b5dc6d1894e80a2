/**
 * How big a request a worker takes, derived from its memory limit. Shared by the router
 * (which passes the limit to every worker it starts, through WorkerSpec.env) and the
 * worker program (its default when started by hand).
 *
 * Why a fraction of memory: a JSON request of n bytes costs the worker up to
 * REQUEST_COST_MULTIPLE × n at its peak (the body, its text, the tree JSON.parse builds
 * and the typed array fed to ONNX Runtime; docs/worker.md has the measurements: about 9×
 * for a flat list of numbers, 21.5× for the worst nesting, a list of one-element lists),
 * on top of the worker's idle memory and its loaded models. Half the memory is what the
 * requests in flight may take at once (the worker refuses more with a 503); the rest is
 * the runtime's and the models'.
 */

/** Peak bytes of worker memory per byte of the worst JSON request, measured (docs/worker.md). */
export const REQUEST_COST_MULTIPLE = 24;

/** The environment variable a worker reads its body limit from. */
export const WORKER_BODY_LIMIT_ENV = 'MODELDOCK_WORKER_BODY_LIMIT';

/** A worker started without MODELDOCK_WORKER_BODY_LIMIT: what a 1 GiB worker would get. */
export const DEFAULT_WORKER_BODY_LIMIT = workerBodyLimit(1024 ** 3);

/** The largest request body a worker with `memoryBytes` of memory accepts (at least 1 MiB). */
export function workerBodyLimit(memoryBytes: number): number {
  return Math.max(1024 ** 2, Math.floor(memoryBytes / 2 / REQUEST_COST_MULTIPLE));
}

/**
 * V8's settings every modeldock worker runs with, so that its heap does not keep the
 * garbage of a shared worker's churn (measured: docs/worker.md#the-heap-after-unloads).
 * `--expose-gc`: the worker collects in full after unloads (heap-compaction.ts).
 * `--max-semi-space-size=2` (MiB): V8 grows its young generation under a steady stream of
 * requests up to 16 MiB a semi-space (32 MiB resident, never given back while traffic
 * lasts); 2 MiB keeps it at 4 MiB, and a worker's requests are small or go to the large
 * object space anyway.
 */
export const WORKER_V8_FLAGS: readonly string[] = ['--expose-gc', '--max-semi-space-size=2'];

/**
 * The C allocator's setting every modeldock worker runs with (and V8's, above). glibc's malloc serves a
 * large block from its heap once a block of that size was freed (its mmap threshold
 * rises with each free, up to 32 MiB), and memory freed in the heap stays resident: a
 * model's weights then cost twice what they hold, depending on what was loaded and
 * unloaded before, and unloading gives nothing back. A fixed threshold of 1 MiB keeps
 * every large block (weights, the model file as read) in its own mapping, returned to
 * the kernel when freed: what a load measures is the model (docs/worker.md#memory-per-model).
 * Smaller blocks (request tensors) keep the heap's speed.
 */
export const WORKER_ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(1024 ** 2),
  NODE_OPTIONS: WORKER_V8_FLAGS.join(' '),
};

/** The environment variable a worker reads its ONNX Runtime intra-op threads from. */
export const WORKER_THREADS_ENV = 'MODELDOCK_WORKER_THREADS';

/**
 * Intra-op threads per session for a worker limited to `nanoCpus`: as many as the CPUs it
 * may use (at least one). Each session keeps a pool of that many threads less one; more
 * than the limit only queue behind its CPU quota, and a shared worker holds hundreds of
 * sessions: at 2 threads a session on a 1-CPU worker, 200 sessions kept 200 extra threads
 * that took a fifth of a CPU while idle and made every thread-pool file read and every
 * rss reading of the worker several milliseconds slower (its loads 6 ms instead of 0.3).
 */
export function workerThreads(nanoCpus: number): number {
  return Math.max(1, Math.round(nanoCpus / 1e9));
}
