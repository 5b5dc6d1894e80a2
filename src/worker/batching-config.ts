/**
 * How a model is batched, from Triton's model configuration fields in model.json
 * (`max_batch_size`, `dynamic_batching`) and, where they are absent, from the graph: a
 * model whose inputs and outputs all start with the same dynamic dimension can take
 * requests stacked along it, so the dynamic batcher is on; a model with a fixed or no
 * first dimension cannot be batched.
 *
 *   "max_batch_size": 32,
 *   "dynamic_batching": {
 *     "max_queue_delay_microseconds": 2000,
 *     "preferred_batch_size": [8, 16],
 *     "default_queue_policy": { "max_queue_size": 256 },
 *     "adaptive_delay": true
 *   }
 *
 * `"dynamic_batching": false` turns the batcher off (each request runs as it comes).
 */
import { InvalidInputError } from '../errors.js';

/** max_batch_size when model.json says none and the graph allows batching. */
export const DEFAULT_MAX_BATCH_SIZE = 64;

export interface DynamicBatching {
  /** The longest a request waits for company while the model is idle (Triton's default: 0). */
  maxQueueDelayUs: number;
  /** Batch sizes to form when possible, ascending (none: as large as max_batch_size allows). */
  preferredBatchSizes: number[];
  /** Most requests waiting; one more is refused with 503 (0: unbounded, Triton's default). */
  maxQueueSize: number;
  /** Wait as long as the traffic seen says company comes (≤ the delay), not the whole delay. */
  adaptive: boolean;
}

export interface BatchingConfig {
  /** Largest batch along the first dimension the batcher forms; 0: the model has no batch dimension. */
  maxBatchSize: number;
  /** Undefined: no dynamic batcher, each request runs on its own. */
  dynamic?: DynamicBatching;
}

/**
 * The first dimension of each input and output as the graph declares it: a number when
 * fixed, a string (its symbol, possibly '') when dynamic, undefined when the tensor has
 * no dimensions (or its shape is unknown).
 */
export type FirstDimension = number | string | undefined;

/** Whether the graph lets requests be stacked: every tensor starts with one shared dynamic dimension. */
export function graphAllowsBatching(firstDimensions: FirstDimension[]): boolean {
  if (firstDimensions.length === 0) return false;
  if (!firstDimensions.every((d) => typeof d === 'string' || (typeof d === 'number' && d < 0))) return false;
  // Named symbols must agree: ["batch", "n"] are two dimensions the graph may size apart.
  const named = new Set(firstDimensions.filter((d): d is string => typeof d === 'string' && d !== ''));
  return named.size <= 1;
}

const DYNAMIC_FIELDS = new Set([
  'max_queue_delay_microseconds',
  'preferred_batch_size',
  'default_queue_policy',
  'preserve_ordering',
  'adaptive_delay',
]);

const isCount = (value: unknown, min: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= 2 ** 31 - 1;

/**
 * The batching in force for a model: model.json's fields (already read as JSON) checked
 * against the graph. A field that makes no sense is a 400 naming it, and the model does
 * not load.
 */
export function resolveBatching(
  modelId: string,
  manifest: { max_batch_size?: unknown; dynamic_batching?: unknown },
  firstDimensions: FirstDimension[],
): BatchingConfig {
  const invalid = (what: string) => new InvalidInputError(`model "${modelId}": model.json ${what}`);
  const batchable = graphAllowsBatching(firstDimensions);
  const declaredMax = manifest.max_batch_size;
  if (declaredMax !== undefined && !isCount(declaredMax, 0)) {
    throw invalid('"max_batch_size" must be a non-negative integer');
  }
  if (declaredMax !== undefined && declaredMax > 0 && !batchable) {
    throw invalid(
      `"max_batch_size" is ${declaredMax}, but the model's inputs and outputs do not all start with one dynamic (batch) dimension`,
    );
  }
  const maxBatchSize = declaredMax ?? (batchable ? DEFAULT_MAX_BATCH_SIZE : 0);
  const declared = manifest.dynamic_batching;
  if (declared === false || maxBatchSize === 0) {
    if (declared !== undefined && declared !== false) {
      throw invalid('"dynamic_batching" needs a model with a batch dimension and max_batch_size above 0');
    }
    return { maxBatchSize };
  }
  if (declared !== undefined && declared !== true && (typeof declared !== 'object' || declared === null)) {
    throw invalid('"dynamic_batching" must be an object, true or false');
  }
  const fields = (typeof declared === 'object' ? declared : {}) as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !DYNAMIC_FIELDS.has(k));
  if (unknown.length > 0) {
    throw invalid(
      `"dynamic_batching" has unknown field(s) ${unknown.map((k) => `"${k.slice(0, 40)}"`).join(', ')}`,
    );
  }
  const delay = fields.max_queue_delay_microseconds ?? 0;
  // A second at most: a longer wait is no batching policy but a stall.
  if (!isCount(delay, 0) || delay > 1_000_000) {
    throw invalid('"dynamic_batching.max_queue_delay_microseconds" must be an integer from 0 to 1000000');
  }
  const preferred = fields.preferred_batch_size ?? [];
  if (!Array.isArray(preferred) || !preferred.every((p) => isCount(p, 1) && p <= maxBatchSize)) {
    throw invalid(
      `"dynamic_batching.preferred_batch_size" must be a list of integers from 1 to max_batch_size (${maxBatchSize})`,
    );
  }
  const policy = fields.default_queue_policy ?? {};
  if (typeof policy !== 'object' || policy === null || Array.isArray(policy)) {
    throw invalid('"dynamic_batching.default_queue_policy" must be an object');
  }
  const queueSize = (policy as { max_queue_size?: unknown }).max_queue_size ?? 0;
  if (!isCount(queueSize, 0)) {
    throw invalid('"dynamic_batching.default_queue_policy.max_queue_size" must be a non-negative integer');
  }
  const adaptive = fields.adaptive_delay ?? true;
  if (typeof adaptive !== 'boolean') throw invalid('"dynamic_batching.adaptive_delay" must be true or false');
  if (fields.preserve_ordering !== undefined && typeof fields.preserve_ordering !== 'boolean') {
    throw invalid('"dynamic_batching.preserve_ordering" must be true or false');
  }
  return {
    maxBatchSize,
    dynamic: {
      maxQueueDelayUs: delay,
      preferredBatchSizes: [...new Set(preferred as number[])].sort((a, b) => a - b),
      maxQueueSize: queueSize,
      adaptive,
    },
  };
}
