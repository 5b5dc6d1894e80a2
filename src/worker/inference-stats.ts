/**
 * The statistics extension: per served name, what Triton reports for a model version —
 * successful and failed requests with their cumulative duration, and where the
 * successful ones spent their time (queue, compute_input, compute_infer,
 * compute_output), all in nanoseconds since the worker started.
 *
 * `queue` is the time between the handler receiving a request and its batch starting
 * (the dynamic batcher's queue, batcher.ts); `compute_input` is checking and converting
 * the tensors (and stacking them with the batch's others), `compute_infer` ONNX
 * Runtime's run of its batch, `compute_output` cutting its rows out and turning them
 * into the answer; `success`/`fail` span the whole handler. As Triton counts them,
 * `execution_count` is the model's runs and `inference_count` the inferences they
 * covered (the rows of every request in the batch dimension, or one per request for a
 * model with `max_batch_size` 0), so requests per execution is what batching bought;
 * `batch_stats` has one entry per batch size run.
 */
import { MODEL_VERSION, type InferTimings } from './inference.js';

export interface Duration {
  count: number;
  ns: number;
}

export interface ModelStatisticsJson {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<
    | 'success'
    | 'fail'
    | 'queue'
    | 'compute_input'
    | 'compute_infer'
    | 'compute_output'
    | 'cache_hit'
    | 'cache_miss',
    Duration
  >;
  batch_stats: {
    batch_size: number;
    compute_input: Duration;
    compute_infer: Duration;
    compute_output: Duration;
  }[];
  memory_usage: never[];
  response_stats: Record<string, never>;
}

const zero = (): Duration => ({ count: 0, ns: 0 });
const add = (d: Duration, ns: number): void => {
  d.count++;
  d.ns += Math.round(ns);
};

export class InferenceStats {
  private readonly models = new Map<string, ModelStatisticsJson>();

  /** A request answered: its whole duration and where it went (the inference_stats). */
  succeeded(name: string, totalNs: number, timings: InferTimings): void {
    const stats = this.of(name);
    const s = stats.inference_stats;
    add(s.success, totalNs);
    add(s.queue, timings.queueNs);
    add(s.compute_input, timings.inputNs);
    add(s.compute_infer, timings.inferNs);
    add(s.compute_output, timings.outputNs);
    stats.last_inference = Date.now();
  }

  /**
   * One run of the model over `batchSize` inferences, for one request or a batch of
   * them: execution_count, inference_count and batch_stats count runs, not requests.
   */
  executed(name: string, batchSize: number, timings: Omit<InferTimings, 'queueNs'>): void {
    const stats = this.of(name);
    stats.inference_count += batchSize;
    stats.execution_count++;
    let batch = stats.batch_stats.find((b) => b.batch_size === batchSize);
    if (!batch) {
      batch = { batch_size: batchSize, compute_input: zero(), compute_infer: zero(), compute_output: zero() };
      stats.batch_stats.push(batch);
      stats.batch_stats.sort((a, b) => a.batch_size - b.batch_size);
    }
    add(batch.compute_input, timings.inputNs);
    add(batch.compute_infer, timings.inferNs);
    add(batch.compute_output, timings.outputNs);
  }

  failed(name: string, totalNs: number): void {
    add(this.of(name).inference_stats.fail, totalNs);
  }

  /** A name no longer served: its figures go with it (a load under it again starts at zero). */
  forget(name: string): void {
    this.models.delete(name);
  }

  /** The statistics of the given names (zeros for a name that has not run yet). */
  report(names: string[]): { model_stats: ModelStatisticsJson[] } {
    return { model_stats: names.map((name) => structuredClone(this.of(name))) };
  }

  private of(name: string): ModelStatisticsJson {
    let stats = this.models.get(name);
    if (!stats) {
      stats = {
        name,
        version: MODEL_VERSION,
        last_inference: 0,
        inference_count: 0,
        execution_count: 0,
        inference_stats: {
          success: zero(),
          fail: zero(),
          queue: zero(),
          compute_input: zero(),
          compute_infer: zero(),
          compute_output: zero(),
          cache_hit: zero(),
          cache_miss: zero(),
        },
        batch_stats: [],
        memory_usage: [],
        response_stats: {},
      };
      this.models.set(name, stats);
    }
    return stats;
  }
}
