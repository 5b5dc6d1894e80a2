/**
 * The charts of each benchmark, drawn from the same object the benchmark writes to
 * bench/results/<name>.json. A benchmark calls its write…Charts(result) once at the end;
 * bench/charts.ts calls the same builders on the JSON files to redraw without a run.
 *
 * Every builder is pure (result in, { chart name: Vega-Lite spec } out) so it can be
 * tested without touching the disk. Benchmarks not drawn here (worker, store) read better as
 * tables: their figures span four orders of magnitude within one comparison.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { TopLevelSpec } from 'vega-lite';
import { barChart, formatValue, lineChart, stackedBarChart, writeChart, type BarSeries } from './chart.js';

// The fields of each result that the charts read, checked at run time: the results come
// from JSON files and from benchmarks that build them loosely typed, and a shape changed
// on one side should fail with the field's path, not draw a wrong chart. Other fields
// are allowed and ignored.

const MachineSchema = Type.Object({
  cpus: Type.Number(),
  cpu_model: Type.String(),
  memory_gib: Type.Number(),
  kernel: Type.String(),
  node: Type.String(),
  date: Type.String(),
});
type Machine = Static<typeof MachineSchema>;

/**
 * What the charts read of a stats.ts Summary. Results written before the quartiles were
 * kept have no q1/q3; their whiskers are then centred on the median (see whiskers()).
 */
const SpreadSchema = Type.Object({
  median: Type.Number(),
  iqr: Type.Number(),
  q1: Type.Optional(Type.Number()),
  q3: Type.Optional(Type.Number()),
});
export type Spread = Static<typeof SpreadSchema>;

const LifecycleResultSchema = Type.Object({
  machine: Type.Optional(MachineSchema),
  trials: Type.Number(),
  operations: Type.Array(
    Type.Object({ operation: Type.String(), floor: SpreadSchema, modeldock: SpreadSchema }),
  ),
  warm_pool: Type.Record(Type.String(), Type.Object({ modeldock: SpreadSchema })),
  /** Keyed "<operation>.<step>", e.g. "DEPLOY_CREATE.start". */
  steps: Type.Record(Type.String(), SpreadSchema),
});
export type LifecycleResult = Static<typeof LifecycleResultSchema>;

const RoutingResultSchema = Type.Object({
  machine: Type.Optional(MachineSchema),
  latency_c1: Type.Record(Type.String(), Type.Object({ median: Type.Number(), p99: Type.Number() })),
  throughput_c32_rps: Type.Record(Type.String(), Type.Number()),
  /** Per-path spread over repeated trials (results before trials were repeated lack it). */
  throughput_c32: Type.Optional(Type.Record(Type.String(), SpreadSchema)),
});
export type RoutingResult = Static<typeof RoutingResultSchema>;

const ScaleResultSchema = Type.Object({
  machine: Type.Optional(MachineSchema),
  scale: Type.Array(
    Type.Object({ servers: Type.Number(), router_rss_mib: Type.Number(), reconcile_pass: SpreadSchema }),
  ),
  concurrency: Type.Array(
    Type.Object({ at_once: Type.Number(), wall_ms: Type.Number(), per_operation: SpreadSchema }),
  ),
});
export type ScaleResult = Static<typeof ScaleResultSchema>;

const PlacementResultSchema = Type.Object({
  machine: Type.Optional(MachineSchema),
  trials: Type.Number(),
  operations: Type.Array(
    Type.Object({ operation: Type.String(), host: SpreadSchema, container: SpreadSchema }),
  ),
});
export type PlacementResult = Static<typeof PlacementResultSchema>;

const DensityPointSchema = Type.Object({
  jobs: Type.Number(),
  workers: Type.Number(),
  total_mib: Type.Number(),
});

const DensityResultSchema = Type.Object({
  machine: Type.Optional(MachineSchema),
  dedicated: Type.Array(DensityPointSchema),
  shared: Type.Array(DensityPointSchema),
});
export type DensityResult = Static<typeof DensityResultSchema>;

/** The result as its schema's type, or an error naming the first fields that do not fit. */
export function checkResult<S extends TSchema>(name: string, schema: S, result: unknown): Static<S> {
  if (Value.Check(schema, result)) return result;
  const problems = [...Value.Errors(schema, result)].slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`);
  throw new TypeError(`${name} result has another shape than its charts read: ${problems.join('; ')}`);
}

/** Chart name → its Vega-Lite spec (rendered to SVG by writeCharts). */
export type Charts = Record<string, TopLevelSpec>;

/**
 * Operations that only talk to a running worker take milliseconds, those that start or
 * remove a container hundreds of them: on one linear axis the first would not show, so
 * each group gets its own chart.
 */
const WORKER_ONLY_OPERATIONS = new Set(['DEPLOY_UNLOAD', 'DEPLOY_LOAD', 'INFER']);

/** The order in which an operation runs its steps, for the stacked breakdown. */
const STEP_ORDER = ['record', 'create', 'start', 'wait_ready', 'load', 'unload', 'infer', 'stop', 'remove'];

/** The targets of the performance issue that the scale benchmark checks. */
const RSS_TARGET_MB = 150;
const RECONCILE_TARGET_MS = 500;
const MB_PER_MIB = 1.048576;

const milliseconds = (value: number) => `${formatValue(value)} ms`;

function footnote(m: Machine | undefined): string | undefined {
  if (!m) return undefined;
  return `${m.cpus} vCPU ${m.cpu_model}, ${m.memory_gib} GiB, Linux ${m.kernel}, Node.js ${m.node}; run of ${m.date.slice(0, 10)}`;
}

/** Whisker ends for a summary: its quartiles, or the IQR centred on the median without them. */
function whiskers(spread: Spread | undefined): [number | null, number | null] {
  if (!spread) return [null, null];
  if (spread.q1 !== undefined && spread.q3 !== undefined) return [spread.q1, spread.q3];
  return [Math.max(0, spread.median - spread.iqr / 2), spread.median + spread.iqr / 2];
}

function whiskerNote(spreads: (Spread | undefined)[]): string {
  const quartiles = spreads.every((s) => !s || (s.q1 !== undefined && s.q3 !== undefined));
  return quartiles
    ? 'whiskers: first to third quartile'
    : 'whiskers: interquartile range centred on the median (no quartiles in these results)';
}

/** A bar series of medians with quartile whiskers, one value per category. */
function medianSeries(name: string, spreads: (Spread | undefined)[]): BarSeries {
  const ends = spreads.map(whiskers);
  return {
    name,
    values: spreads.map((s) => s?.median ?? null),
    low: ends.map(([low]) => low),
    high: ends.map(([, high]) => high),
  };
}

function hasValues(series: BarSeries): boolean {
  return series.values.some((v) => v !== null);
}

function splitOperations<T extends { operation: string }>(rows: T[]): { container: T[]; worker: T[] } {
  return {
    container: rows.filter((r) => !WORKER_ONLY_OPERATIONS.has(r.operation)),
    worker: rows.filter((r) => WORKER_ONLY_OPERATIONS.has(r.operation)),
  };
}

export function lifecycleCharts(result: LifecycleResult): Charts {
  const charts: Charts = {};
  const groups = splitOperations(result.operations);
  const titles = {
    container: 'Lifecycle operations that start or remove a container',
    worker: 'Lifecycle operations on a running worker',
  };
  for (const [group, rows] of Object.entries(groups) as [keyof typeof groups, typeof result.operations][]) {
    if (rows.length === 0) continue;
    const operations = rows.map((r) => r.operation);
    const pooled = operations.map((op) => result.warm_pool[op]?.modeldock);
    const series = [
      medianSeries(
        'engine floor',
        rows.map((r) => r.floor),
      ),
      medianSeries(
        'modeldock',
        rows.map((r) => r.modeldock),
      ),
      medianSeries('modeldock + warm pool', pooled),
    ].filter(hasValues);
    const spreads = [...rows.flatMap((r) => [r.floor, r.modeldock]), ...pooled];
    charts[group === 'container' ? 'lifecycle' : 'lifecycle-worker-ops'] = barChart({
      title: titles[group],
      subtitle: `Median of ${result.trials} trials, same run; ${whiskerNote(spreads)}.`,
      categories: operations,
      series,
      axisLabel: 'milliseconds (lower is better)',
      formatValue: milliseconds,
      missingLabel: series.length > 2 ? 'no warm pool for this operation' : undefined,
      footnote: footnote(result.machine),
    });
  }

  // Steps of the operations that touch a container; the others' steps would not show.
  const stepsOf = (operation: string) =>
    Object.keys(result.steps)
      .filter((key) => key.startsWith(`${operation}.`))
      .map((key) => key.slice(operation.length + 1));
  const stepped = groups.container.map((r) => r.operation).filter((op) => stepsOf(op).length > 0);
  if (stepped.length > 0) {
    const names = [...new Set(stepped.flatMap(stepsOf))];
    const rank = (name: string) => (STEP_ORDER.includes(name) ? STEP_ORDER.indexOf(name) : STEP_ORDER.length);
    names.sort((a, b) => rank(a) - rank(b));
    charts['lifecycle-steps'] = stackedBarChart({
      title: 'Where the time goes: the steps of each operation',
      subtitle: [
        `Median of each step in the operation records (${result.trials} trials, no warm pool);`,
        'a bar is the sum of its steps. start, wait_ready, stop and remove are the engine and the worker.',
      ],
      categories: stepped,
      segments: names.map((name) => ({
        name,
        values: stepped.map((op) => result.steps[`${op}.${name}`]?.median ?? null),
      })),
      axisLabel: 'milliseconds',
      footnote: footnote(result.machine),
    });
  }
  return charts;
}

/** Readable names for the routing benchmark's paths; others keep their key. */
const ROUTING_PATHS: Record<string, string> = {
  direct: 'worker directly',
  nginx: 'through nginx',
  lean: 'through a lean Node.js proxy',
  modeldock: 'through modeldock',
  direct_binary: 'worker directly, binary tensors',
  modeldock_grpc: 'through modeldock, gRPC',
  direct_grpc: 'worker directly, gRPC',
  lean_grpc_translate: 'lean gRPC to worker HTTP',
  lean_grpc_forward: 'lean gRPC to worker gRPC',
};

export function routingCharts(result: RoutingResult): Charts {
  const paths = Object.keys(result.latency_c1);
  const names = paths.map((p) => ROUTING_PATHS[p] ?? p);
  const throughputPaths = Object.keys(result.throughput_c32_rps);
  return {
    'routing-latency': barChart({
      title: 'Latency of one inference request, by path',
      subtitle: 'Sequential requests (concurrency 1), one 64-pixel digit to m-131.',
      categories: names,
      series: [
        { name: 'p50', values: paths.map((p) => result.latency_c1[p]!.median) },
        { name: 'p99', values: paths.map((p) => result.latency_c1[p]!.p99) },
      ],
      axisLabel: 'milliseconds (lower is better)',
      formatValue: milliseconds,
      footnote: footnote(result.machine),
    }),
    'routing-throughput': barChart({
      title: 'Throughput at concurrency 32, by path',
      subtitle: result.throughput_c32
        ? `The same request from 32 connections (wrk, same two CPUs); median of trials, ${whiskerNote(throughputPaths.map((p) => result.throughput_c32![p]))}.`
        : 'The same request from 32 connections; load generator on the same two CPUs.',
      categories: throughputPaths.map((p) => ROUTING_PATHS[p] ?? p),
      series: [
        result.throughput_c32
          ? medianSeries(
              'requests per second',
              throughputPaths.map((p) => result.throughput_c32![p]),
            )
          : {
              name: 'requests per second',
              values: throughputPaths.map((p) => result.throughput_c32_rps[p]!),
            },
      ],
      axisLabel: 'requests per second (higher is better)',
      formatValue: (v) => formatValue(Math.round(v)),
      footnote: footnote(result.machine),
    }),
  };
}

export function scaleCharts(result: ScaleResult): Charts {
  const servers = result.scale.map((s) => s.servers);
  const targetMiB = RSS_TARGET_MB / MB_PER_MIB;
  const atOnce = result.concurrency.map((c) => c.at_once);
  const alone = result.concurrency.find((c) => c.at_once === 1);
  return {
    'scale-memory': lineChart({
      title: 'Router memory by number of live servers',
      subtitle: 'Resident set size of the router process (compiled, SQLite store).',
      series: [
        { name: 'router RSS', points: result.scale.map((s) => ({ x: s.servers, y: s.router_rss_mib })) },
      ],
      xLabel: 'live servers',
      yLabel: 'MiB',
      xTicks: servers,
      target: { value: targetMiB, label: `target ${RSS_TARGET_MB} MB (${formatValue(targetMiB)} MiB)` },
      formatValue: (v) => `${formatValue(v)} MiB`,
      footnote: footnote(result.machine),
    }),
    'scale-reconcile': lineChart({
      title: 'Full reconcile pass by number of live servers',
      subtitle: 'POST /v1/reconcile: every server record against every container; median of 5.',
      series: [
        {
          name: 'reconcile pass (median)',
          points: result.scale.map((s) => ({ x: s.servers, y: s.reconcile_pass.median })),
        },
      ],
      xLabel: 'live servers',
      yLabel: 'milliseconds',
      xTicks: servers,
      target: { value: RECONCILE_TARGET_MS, label: `target ${RECONCILE_TARGET_MS} ms` },
      formatValue: milliseconds,
      footnote: footnote(result.machine),
    }),
    'scale-concurrency': lineChart({
      title: 'DEPLOY_CREATE of different jobs at once',
      subtitle: 'Wall time until all have answered, against the same number one after the other.',
      series: [
        {
          name: 'wall time, all at once',
          points: result.concurrency.map((c) => ({ x: c.at_once, y: c.wall_ms })),
        },
        {
          name: 'each operation (median)',
          points: result.concurrency.map((c) => ({ x: c.at_once, y: c.per_operation.median })),
        },
        ...(alone
          ? [
              {
                name: 'one after the other (n × one alone)',
                points: result.concurrency.map((c) => ({ x: c.at_once, y: c.at_once * alone.wall_ms })),
                dashed: true,
              },
            ]
          : []),
      ],
      xLabel: 'operations at once',
      yLabel: 'milliseconds',
      xTicks: atOnce,
      formatValue: milliseconds,
      footnote: footnote(result.machine),
    }),
  };
}

export function placementCharts(result: PlacementResult): Charts {
  const charts: Charts = {};
  const groups = splitOperations(result.operations);
  for (const [group, rows] of Object.entries(groups) as [keyof typeof groups, typeof result.operations][]) {
    if (rows.length === 0) continue;
    const spreads = rows.flatMap((r) => [r.host, r.container]);
    charts[group === 'container' ? 'placement' : 'placement-worker-ops'] = barChart({
      title:
        group === 'container'
          ? 'Router on the host vs in a container: container work'
          : 'Router on the host vs in a container: calls to a running worker',
      subtitle: `Median of ${result.trials} trials each, interleaved; ${whiskerNote(spreads)}.`,
      categories: rows.map((r) => r.operation),
      series: [
        medianSeries(
          'router on the host',
          rows.map((r) => r.host),
        ),
        medianSeries(
          'router in a container',
          rows.map((r) => r.container),
        ),
      ],
      axisLabel: 'milliseconds (lower is better)',
      formatValue: milliseconds,
      footnote: footnote(result.machine),
    });
  }
  return charts;
}

const BatchingResultSchema = Type.Object({
  machine: MachineSchema,
  cells: Type.Array(
    Type.Object({
      model: Type.String(),
      path: Type.String(),
      concurrency: Type.Number(),
      mode: Type.String(),
      rps: Type.Number(),
      p50_ms: Type.Number(),
      p99_ms: Type.Number(),
    }),
  ),
});
export type BatchingResult = Static<typeof BatchingResultSchema>;

const BATCHING_MODES: Record<string, string> = {
  off: 'batching off',
  no_delay: 'batching, no delay',
  fixed: 'fixed delay',
  adaptive: 'adaptive delay',
};

/** Throughput by concurrency and batching mode, one chart per model, straight to the worker. */
export function batchingCharts(result: BatchingResult): Charts {
  const charts: Charts = {};
  for (const model of [...new Set(result.cells.map((c) => c.model))]) {
    const cells = result.cells.filter((c) => c.model === model && c.path === 'worker');
    const levels = [...new Set(cells.map((c) => c.concurrency))].sort((a, b) => a - b);
    charts[`batching-${model}`] = barChart({
      title: `Dynamic batching on ${model}: throughput by concurrency`,
      subtitle: 'One-sample requests straight to the worker (1 CPU), closed-loop clients; median of trials.',
      categories: levels.map((c) => `concurrency ${c}`),
      series: Object.entries(BATCHING_MODES).map(([mode, name]) => ({
        name,
        values: levels.map(
          (level) => cells.find((c) => c.concurrency === level && c.mode === mode)?.rps ?? null,
        ),
      })),
      axisLabel: 'requests per second (higher is better)',
      formatValue: (v) => formatValue(Math.round(v)),
      footnote: footnote(result.machine),
    });
  }
  return charts;
}

/** Issue #26's memory target for 1,000 live shared jobs. */
const DENSITY_TARGET_MIB = 1536;

export function densityCharts(result: DensityResult): Charts {
  const jobs = [...new Set([...result.dedicated, ...result.shared].map((p) => p.jobs))].sort((a, b) => a - b);
  return {
    'density-memory': lineChart({
      title: 'Total worker memory by number of live jobs',
      subtitle:
        'Every worker the router runs, as the runtime measures it (GET /v1/stats); each job with a model directory of its own (m-131).',
      series: [
        {
          name: 'dedicated (a worker per job)',
          points: result.dedicated.map((p) => ({ x: p.jobs, y: p.total_mib })),
        },
        {
          name: 'shared (many jobs per worker)',
          points: result.shared.map((p) => ({ x: p.jobs, y: p.total_mib })),
        },
      ],
      xLabel: 'live jobs',
      yLabel: 'MiB',
      xTicks: jobs,
      target: { value: DENSITY_TARGET_MIB, label: 'target for 1,000 shared jobs: 1.5 GiB' },
      formatValue: (v) => `${formatValue(v)} MiB`,
      footnote: footnote(result.machine),
    }),
  };
}

/**
 * The charts of each result by its name (bench/results/<name>.json), from a result of
 * any type: it is checked first.
 */
export const CHARTS_BY_RESULT: Record<string, (result: unknown) => Charts> = {
  lifecycle: (result) => lifecycleCharts(checkResult('lifecycle', LifecycleResultSchema, result)),
  routing: (result) => routingCharts(checkResult('routing', RoutingResultSchema, result)),
  scale: (result) => scaleCharts(checkResult('scale', ScaleResultSchema, result)),
  placement: (result) => placementCharts(checkResult('placement', PlacementResultSchema, result)),
  batching: (result) => batchingCharts(checkResult('batching', BatchingResultSchema, result)),
  density: (result) => densityCharts(checkResult('density', DensityResultSchema, result)),
};

/** Renders each chart to bench/results/<name>.svg; returns the files written. */
export async function writeCharts(charts: Charts): Promise<string[]> {
  const written: string[] = [];
  for (const [name, spec] of Object.entries(charts)) written.push(await writeChart(name, spec));
  return written;
}

// What the benchmarks call at the end of a run, with the object they wrote as JSON.
export const writeLifecycleCharts = (result: unknown): Promise<string[]> =>
  writeCharts(CHARTS_BY_RESULT.lifecycle!(result));
export const writeRoutingCharts = (result: unknown): Promise<string[]> =>
  writeCharts(CHARTS_BY_RESULT.routing!(result));
export const writeScaleCharts = (result: unknown): Promise<string[]> =>
  writeCharts(CHARTS_BY_RESULT.scale!(result));
export const writePlacementCharts = (result: unknown): Promise<string[]> =>
  writeCharts(CHARTS_BY_RESULT.placement!(result));
export const writeBatchingCharts = (result: unknown): Promise<string[]> =>
  writeCharts(CHARTS_BY_RESULT.batching!(result));
export const writeDensityCharts = (result: unknown): Promise<string[]> =>
  writeCharts(CHARTS_BY_RESULT.density!(result));
