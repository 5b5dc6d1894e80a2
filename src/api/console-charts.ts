/**
 * The web console's charts as Vega-Lite specs, rendered to SVG by the router (the same
 * library as the benchmark charts, src/charts/vega-svg.ts). Vega is too large for the
 * console's 200 KB budget in the browser; rendered here it costs the browser nothing.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { WorkerSample } from './worker-stats.js';

interface OperationLike {
  operation_id: string;
  type: string;
  job_id: string;
  status: string;
  steps: { name: string; duration_ms: number | null }[];
}

/** The order in which operations run their steps, for the stacked bars. */
const STEP_ORDER = ['record', 'create', 'start', 'wait_ready', 'load', 'unload', 'infer', 'stop', 'remove'];

/** One horizontal bar per operation, newest on top, its steps stacked in the order they ran. */
export function operationsSpec(operations: OperationLike[]): TopLevelSpec {
  const values = operations.flatMap((o, index) =>
    o.steps.map((s) => ({
      operation: `${o.type} ${o.job_id} · ${o.operation_id.slice(-6)}`,
      index,
      step: s.name,
      rank: STEP_ORDER.includes(s.name) ? STEP_ORDER.indexOf(s.name) : STEP_ORDER.length,
      ms: s.duration_ms ?? 0,
      status: o.status,
    })),
  );
  return {
    width: 520,
    title: {
      text: 'Recent operations: where the time goes',
      subtitle: 'Steps of each operation, in milliseconds',
    },
    data: { values },
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: 'operation', type: 'nominal', sort: { field: 'index', order: 'ascending' }, title: null },
      x: { field: 'ms', type: 'quantitative', aggregate: 'sum', stack: 'zero', title: 'milliseconds' },
      color: { field: 'step', type: 'nominal', sort: STEP_ORDER, title: 'step' },
      order: { field: 'rank', type: 'quantitative' },
    },
  };
}

/** Resident memory of each worker, with its limit as a tick when it has one. */
export function memorySpec(workers: WorkerSample[]): TopLevelSpec {
  const values = workers.map((w) => ({
    worker: w.job_id ? `${w.job_id} (${w.container_name})` : `${w.container_name} (${w.kind})`,
    mib: Math.round((w.memory_bytes / 1048576) * 10) / 10,
    limit: w.memory_limit_bytes === null ? null : Math.round(w.memory_limit_bytes / 1048576),
  }));
  return {
    width: 300,
    title: { text: 'Worker memory', subtitle: 'Resident, MiB; the tick is the worker’s limit' },
    data: { values },
    layer: [
      {
        mark: { type: 'bar', tooltip: true, color: '#0072B2' },
        encoding: {
          y: { field: 'worker', type: 'nominal', title: null },
          x: { field: 'mib', type: 'quantitative', title: 'MiB' },
        },
      },
      {
        mark: { type: 'tick', color: '#D55E00', thickness: 2 },
        encoding: { y: { field: 'worker', type: 'nominal' }, x: { field: 'limit', type: 'quantitative' } },
      },
    ],
  };
}
