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

/**
 * Every step an operation records, in the order they run (for the stacked bars), each with
 * a colour of its own: the chart palette has eight, the steps are eleven, and a legend whose
 * `record` and `drain` shared one colour could not be read. Okabe and Ito's eight plus a
 * grey for the bookkeeping `record`, a wine for `drain`, an indigo for `link` and a teal for `measure_memory`.
 */
const STEP_COLORS: [step: string, color: string][] = [
  ['record', '#999999'],
  ['create', '#E69F00'],
  ['start', '#009E73'],
  ['wait_ready', '#D55E00'],
  ['drain', '#882255'],
  ['link', '#332288'],
  ['load', '#56B4E9'],
  ['unload', '#CC79A7'],
  ['measure_memory', '#44AA99'],
  ['infer', '#F0E442'],
  ['stop', '#0072B2'],
  ['remove', '#000000'],
];
const STEP_ORDER = STEP_COLORS.map(([step]) => step);

/** The memory chart's width: with its labels it fits the console's narrowest card (22rem). */
const MEMORY_PLOT_WIDTH = 160;
/** Worker labels longer than this (px) are cut with an ellipsis (the tooltip has them whole). */
const MEMORY_LABEL_LIMIT = 110;

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
      color: {
        field: 'step',
        type: 'nominal',
        title: 'step',
        scale: { domain: STEP_ORDER, range: STEP_COLORS.map(([, color]) => color) },
      },
      order: { field: 'rank', type: 'quantitative' },
    },
  };
}

/**
 * Resident memory of each worker, with its limit as a tick when it has one. Sized to its
 * card in the console, whose heading is its title: a worker is labelled by its job (or as
 * a pool worker), the container's name is in the tooltip.
 */
export function memorySpec(workers: WorkerSample[]): TopLevelSpec {
  const values = workers.map((w) => ({
    // A job has one worker at a time; pool workers are told apart by their name's end.
    worker: w.job_id ?? `${w.kind} …${w.container_name.slice(-6)}`,
    container: w.container_name,
    mib: Math.round((w.memory_bytes / 1048576) * 10) / 10,
    limit: w.memory_limit_bytes === null ? null : Math.round(w.memory_limit_bytes / 1048576),
  }));
  const y = { field: 'worker', type: 'nominal', title: null } as const;
  return {
    width: MEMORY_PLOT_WIDTH,
    data: { values },
    layer: [
      {
        mark: { type: 'bar', color: '#0072B2' },
        encoding: {
          y: { ...y, axis: { labelLimit: MEMORY_LABEL_LIMIT } },
          x: { field: 'mib', type: 'quantitative', title: 'resident MiB (tick: the limit)' },
          tooltip: [
            { field: 'worker', type: 'nominal' },
            { field: 'container', type: 'nominal' },
            { field: 'mib', type: 'quantitative', title: 'MiB' },
            { field: 'limit', type: 'quantitative', title: 'limit, MiB' },
          ],
        },
      },
      {
        mark: { type: 'tick', color: '#D55E00', thickness: 2 },
        encoding: { y, x: { field: 'limit', type: 'quantitative' } },
      },
    ],
  };
}
