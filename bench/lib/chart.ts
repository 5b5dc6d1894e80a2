/**
 * The benchmark charts as Vega-Lite specifications: grouped bars (with optional
 * whiskers), stacked bars and line charts. The chart functions are pure (figures in, a
 * spec out); writeChart renders a spec to SVG with the project's one charting library
 * (src/charts/vega-svg.ts, which the web console's charts use too) and puts it beside
 * the JSON in bench/results/.
 *
 * Bars are horizontal: operation and path names are long and read without rotation.
 * Value axes are linear and start at zero, so bar lengths compare honestly; when
 * magnitudes differ wildly, draw separate charts instead of a log scale. Each bar and
 * point carries its value as a label, so the figures can be read without the axis.
 */
import type { TopLevelSpec } from 'vega-lite';
import { renderSvg } from '../../src/charts/vega-svg.js';
import { writeResultFile } from './stats.js';

/**
 * A value label with three or so significant digits: 367, 40.7, 1.50, 0.013; whole
 * numbers stay whole (16, not 16.0), large ones grouped (18,261).
 */
export function formatValue(value: number): string {
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  const magnitude = Math.abs(value);
  const decimals = magnitude >= 100 || magnitude === 0 ? 0 : magnitude >= 10 ? 1 : magnitude >= 0.1 ? 2 : 3;
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** What every chart has around its plot: titles, value format, footnote, width. */
export interface ChartSpecBase {
  title: string;
  subtitle?: string | string[];
  formatValue?: (value: number) => string;
  footnote?: string;
  width?: number;
}

export interface BarSeries {
  name: string;
  /** One value per category; null (or not finite) where the series has none: no bar. */
  values: (number | null)[];
  /** Whisker ends per category, e.g. the first and third quartile; absent: no whisker. */
  low?: (number | null)[];
  high?: (number | null)[];
}

export interface BarChartSpec extends ChartSpecBase {
  categories: string[];
  series: BarSeries[];
  /** Label of the value axis, with the unit: "milliseconds (median)". */
  axisLabel: string;
  /** Written in the slot of a missing value, so an absent bar does not read as zero. */
  missingLabel?: string | undefined;
}

export interface StackSegment {
  name: string;
  /** One value per category; 0, null or not finite: no segment in that bar. */
  values: (number | null)[];
}

export interface StackedBarChartSpec extends ChartSpecBase {
  categories: string[];
  /** In stacking order, left to right; each keeps its colour in every bar. */
  segments: StackSegment[];
  axisLabel: string;
}

export interface LinePoint {
  x: number;
  y: number;
}

export interface LineSeries {
  name: string;
  points: LinePoint[];
  /** Drawn dashed: for a derived or reference series rather than a measured one. */
  dashed?: boolean;
}

export interface LineChartSpec extends ChartSpecBase {
  series: LineSeries[];
  xLabel: string;
  yLabel: string;
  /** Where to put x ticks, e.g. exactly at the measured sizes. */
  xTicks?: number[];
  /** A horizontal dashed reference line, e.g. { value: 150, label: 'target 150 MB' }. */
  target?: { value: number; label: string };
}

function present(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function checkNotNegative(values: Iterable<number | null | undefined>, what: string): void {
  for (const value of values) {
    if (present(value) && value < 0) throw new RangeError(`${what}: negative value ${value} on a bar chart`);
  }
}

/** Title, subtitle lines and the footnote (the machine), as Vega-Lite's title block. */
function title(spec: ChartSpecBase) {
  const subtitle = [...(Array.isArray(spec.subtitle) ? spec.subtitle : spec.subtitle ? [spec.subtitle] : [])];
  if (spec.footnote) subtitle.push(spec.footnote);
  return { text: spec.title, ...(subtitle.length ? { subtitle } : {}) };
}

/**
 * Categories down the left, one horizontal bar per series in each category's group (in
 * the series' order and colour), whiskers where given, the value written past each bar.
 */
export function barChart(spec: BarChartSpec): TopLevelSpec {
  const format = spec.formatValue ?? formatValue;
  for (const s of spec.series)
    checkNotNegative([...s.values, ...(s.low ?? []), ...(s.high ?? [])], spec.title);
  const rows = spec.series.flatMap((series, order) =>
    spec.categories.map((category, i) => {
      const value = series.values[i];
      const low = series.low?.[i];
      const high = series.high?.[i];
      return {
        category,
        series: series.name,
        order,
        value: present(value) ? value : null,
        low: present(low) ? low : null,
        high: present(high) ? high : null,
        // Labels sit past the whisker, if any, so they never overlap it.
        labelAt: present(value) ? Math.max(value, present(high) ? high : value) : 0,
        label: present(value) ? format(value) : (spec.missingLabel ?? ''),
      };
    }),
  );
  const y = { field: 'category', type: 'nominal', sort: spec.categories, title: null } as const;
  const yOffset = { field: 'series', type: 'nominal', sort: spec.series.map((s) => s.name) } as const;
  const colour = {
    field: 'series',
    type: 'nominal',
    sort: spec.series.map((s) => s.name),
    title: null,
  } as const;
  return {
    width: spec.width ?? 560,
    title: title(spec),
    data: { values: rows },
    encoding: { y, yOffset },
    layer: [
      {
        transform: [{ filter: 'datum.value !== null' }],
        mark: { type: 'bar', height: { band: 1 } },
        encoding: { x: { field: 'value', type: 'quantitative', title: spec.axisLabel }, color: colour },
      },
      {
        transform: [{ filter: 'datum.low !== null && datum.high !== null' }],
        mark: { type: 'rule', color: '#222', strokeWidth: 1.5 },
        encoding: { x: { field: 'low', type: 'quantitative' }, x2: { field: 'high' } },
      },
      {
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 11, color: '#222' },
        encoding: { x: { field: 'labelAt', type: 'quantitative' }, text: { field: 'label' } },
      },
    ],
    resolve: { scale: { x: 'shared' } },
  } as TopLevelSpec;
}

/**
 * One horizontal bar per category, its segments end to end in the given order; a
 * segment's value is written inside it where it is wide enough, the total at the bar's
 * end. Segments empty in every bar are left out (and so out of the legend).
 */
export function stackedBarChart(spec: StackedBarChartSpec): TopLevelSpec {
  const format = spec.formatValue ?? formatValue;
  const segments = spec.segments.filter((s) => s.values.some((v) => present(v) && v > 0));
  for (const s of segments) checkNotNegative(s.values, spec.title);
  const totals = spec.categories.map((_, i) =>
    segments.reduce((sum, s) => sum + (present(s.values[i]) ? s.values[i]! : 0), 0),
  );
  const widest = Math.max(0, ...totals);
  const rows = spec.categories.flatMap((category, i) => {
    let start = 0;
    return segments.flatMap((segment) => {
      const value = segment.values[i];
      if (!present(value) || value <= 0) return [];
      const row = {
        category,
        segment: segment.name,
        value,
        start,
        end: start + value,
        middle: start + value / 2,
        // Written inside only when the segment is wide enough for its label.
        label: value >= widest * 0.07 ? format(value) : '',
      };
      start += value;
      return [row];
    });
  });
  const ends = spec.categories.map((category, i) => ({
    category,
    total: totals[i]!,
    label: format(totals[i]!),
  }));
  const y = { field: 'category', type: 'nominal', sort: spec.categories, title: null } as const;
  return {
    width: spec.width ?? 560,
    title: title(spec),
    layer: [
      {
        data: { values: rows },
        mark: { type: 'bar', stroke: 'white', strokeWidth: 1 },
        encoding: {
          y,
          x: { field: 'start', type: 'quantitative', title: spec.axisLabel },
          x2: { field: 'end' },
          color: { field: 'segment', type: 'nominal', sort: segments.map((s) => s.name), title: null },
        },
      },
      {
        data: { values: rows },
        mark: { type: 'text', fontSize: 10, color: 'white' },
        encoding: { y, x: { field: 'middle', type: 'quantitative' }, text: { field: 'label' } },
      },
      {
        data: { values: ends },
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 11, color: '#222' },
        encoding: { y, x: { field: 'total', type: 'quantitative' }, text: { field: 'label' } },
      },
    ],
  } as TopLevelSpec;
}

/**
 * Lines with a marker (a different shape per series, so they differ by more than colour)
 * at each point over a linear x axis, y from zero, each point's value written above it;
 * an optional dashed target line with its label.
 */
export function lineChart(spec: LineChartSpec): TopLevelSpec {
  const format = spec.formatValue ?? formatValue;
  const names = spec.series.map((s) => s.name);
  const rows = spec.series.flatMap((series) =>
    series.points.map((p) => ({
      series: series.name,
      x: p.x,
      y: p.y,
      dashed: series.dashed === true,
      label: format(p.y),
    })),
  );
  const x = {
    field: 'x',
    type: 'quantitative',
    title: spec.xLabel,
    ...(spec.xTicks ? { axis: { values: spec.xTicks } } : {}),
  } as const;
  const y = { field: 'y', type: 'quantitative', title: spec.yLabel, scale: { zero: true } } as const;
  const colour = { field: 'series', type: 'nominal', sort: names, title: null } as const;
  const layers: unknown[] = [
    {
      data: { values: rows },
      mark: { type: 'line' },
      encoding: {
        x,
        y,
        color: colour,
        detail: { field: 'series', type: 'nominal' },
        strokeDash: {
          field: 'dashed',
          type: 'nominal',
          scale: {
            domain: [false, true],
            range: [
              [1, 0],
              [6, 4],
            ],
          },
          legend: null,
        },
      },
    },
    {
      data: { values: rows },
      // A marker of its own shape per series, so the lines differ by more than colour.
      mark: { type: 'point', filled: true, size: 50, opacity: 1 },
      encoding: {
        x,
        y,
        color: colour,
        shape: { field: 'series', type: 'nominal', sort: names, title: null },
      },
    },
    {
      data: { values: rows },
      mark: { type: 'text', dy: -9, fontSize: 10, color: '#222' },
      encoding: { x, y, text: { field: 'label' } },
    },
  ];
  if (spec.target) {
    const target = [{ y: spec.target.value, label: spec.target.label }];
    layers.push(
      {
        data: { values: target },
        mark: { type: 'rule', color: '#D55E00', strokeDash: [4, 4] },
        encoding: { y: { field: 'y', type: 'quantitative' } },
      },
      {
        data: { values: target },
        mark: { type: 'text', align: 'right', dy: -6, x: 'width', color: '#D55E00', fontSize: 11 },
        encoding: { y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } },
      },
    );
  }
  return { width: spec.width ?? 560, height: 260, title: title(spec), layer: layers } as TopLevelSpec;
}

/** Renders the spec and writes bench/results/<name>.svg, beside <name>.json; returns the file's path. */
export async function writeChart(name: string, spec: TopLevelSpec): Promise<string> {
  return writeResultFile(`${name}.svg`, await renderSvg(spec));
}
