/**
 * Running prepared requests of one batch key as one ONNX Runtime call: their inputs
 * stacked along the first (batch) dimension in order, each output cut back into each
 * request's own rows. The dynamic batcher (batcher.ts) decides what runs together;
 * this module makes the one call and gives each request exactly its rows.
 *
 * Isolation: when the stacked call fails (one request's values the model refuses) or a
 * model answers with outputs whose first dimension is not the batch's rows (nothing to
 * cut along), each request runs again on its own, so a request only ever fails for what
 * it sent itself.
 */
import ort from 'onnxruntime-node';
import { elapsedNs, runModel, type PreparedRequest } from './inference.js';
import type { LoadedModel } from './model-store.js';

/** One ONNX Runtime call, for the statistics extension (batch_stats, execution_count). */
export interface Execution {
  /** Rows along the batch dimension the call ran. */
  rows: number;
  inputNs: number;
  inferNs: number;
  outputNs: number;
}

/** A request's own output tensors and the run that made them, or why its run failed. */
export type Outcome = { tensors: Record<string, ort.Tensor>; execution: Execution } | { error: unknown };

export interface BatchRun {
  /** One per request, in order. */
  outcomes: Outcome[];
  executions: Execution[];
}

type Typed = ArrayLike<unknown> & {
  length: number;
  set(array: ArrayLike<unknown>, offset?: number): void;
  subarray(begin: number, end: number): Typed;
};
type TypedConstructor = new (length: number) => Typed;

/** Elements in one row of a tensor: the product of its dimensions after the first. */
const rowElements = (dims: readonly number[]): number => dims.slice(1).reduce((a, b) => a * b, 1);

/** The inputs of `items` stacked along the first dimension, in order. */
function stack(items: PreparedRequest[], rows: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of Object.keys(items[0]!.feeds)) {
    const first = items[0]!.feeds[name]!;
    const per = rowElements(first.dims);
    const merged = new ((first.data as Typed).constructor as TypedConstructor)(rows * per);
    let offset = 0;
    for (const item of items) {
      const data = item.feeds[name]!.data as Typed;
      merged.set(data, offset);
      offset += data.length;
    }
    feeds[name] = new ort.Tensor(first.type, merged as never, [rows, ...first.dims.slice(1)]);
  }
  return feeds;
}

/** Each item's rows of every output, or undefined when an output has no batch dimension of `rows`. */
function cut(
  results: ort.InferenceSession.OnnxValueMapType,
  names: string[],
  items: PreparedRequest[],
  rows: number,
): Record<string, ort.Tensor>[] | undefined {
  const per = items.map(() => ({}) as Record<string, ort.Tensor>);
  for (const name of names) {
    const tensor = results[name] as ort.Tensor;
    if (tensor.dims.length === 0 || tensor.dims[0] !== rows) return undefined;
    const elements = rowElements(tensor.dims);
    const data = tensor.data as unknown as Typed;
    let row = 0;
    items.forEach((item, i) => {
      const own = item.rows!;
      const part = data.subarray(row * elements, (row + own) * elements);
      per[i]![name] = new ort.Tensor(tensor.type, part as never, [own, ...tensor.dims.slice(1)]);
      row += own;
    });
  }
  return per;
}

/** Run one request on its own. */
async function runAlone(model: LoadedModel, item: PreparedRequest, countedRows: number): Promise<BatchRun> {
  const started = performance.now();
  try {
    const results = await runModel(
      model,
      item.feeds,
      item.wanted.map((o) => o.name),
    );
    const execution = {
      rows: countedRows,
      inputNs: 0,
      inferNs: elapsedNs(started, performance.now()),
      outputNs: 0,
    };
    return {
      outcomes: [{ tensors: results as Record<string, ort.Tensor>, execution }],
      executions: [execution],
    };
  } catch (error) {
    return { outcomes: [{ error }], executions: [] };
  }
}

/**
 * Run `items` (one batch key, each with `rows`) as one call. `countRows` says how many
 * inferences a request is in the statistics (its rows, or 1 for a model without batching).
 */
export async function runBatch(
  model: LoadedModel,
  items: PreparedRequest[],
  countRows: (item: PreparedRequest) => number,
): Promise<BatchRun> {
  if (items.length === 1) return runAlone(model, items[0]!, countRows(items[0]!));
  const started = performance.now();
  const rows = items.reduce((sum, item) => sum + item.rows!, 0);
  const names = items[0]!.wanted.map((o) => o.name);
  const feeds = stack(items, rows);
  const stacked = performance.now();
  let results: ort.InferenceSession.OnnxValueMapType | undefined;
  try {
    results = await runModel(model, feeds, names);
  } catch {
    results = undefined; // one of them, or their sum: each runs alone below
  }
  const ran = performance.now();
  const parts = results && cut(results, names, items, rows);
  if (parts) {
    const execution = {
      rows: items.reduce((sum, item) => sum + countRows(item), 0),
      inputNs: elapsedNs(started, stacked),
      inferNs: elapsedNs(stacked, ran),
      outputNs: elapsedNs(ran, performance.now()),
    };
    return { outcomes: parts.map((tensors) => ({ tensors, execution })), executions: [execution] };
  }
  const alone = [];
  for (const item of items) alone.push(await runAlone(model, item, countRows(item)));
  return {
    outcomes: alone.flatMap((run) => run.outcomes),
    executions: alone.flatMap((run) => run.executions),
  };
}
