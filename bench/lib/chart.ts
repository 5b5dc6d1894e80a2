/**
 * Dependency-free SVG charts for the benchmark results: grouped bars (with optional
 * whiskers), stacked bars and line charts. The chart functions are pure and return the
 * SVG text; writeChart puts it beside the JSON in bench/results/.
 *
 * Bars are horizontal only: operation and path names are long and read without rotation
 * on a horizontal bar. Value axes are linear and start at zero, so bar lengths compare
 * honestly; when magnitudes differ wildly, draw separate charts instead of a log scale.
 * Legends sit between the title and the plot, so they can never cover data.
 */
import { writeResultFile } from './stats.js';

/**
 * Okabe and Ito's palette: its colours stay distinguishable with the common colour-vision
 * deficiencies. Black comes last, for the eighth series or segment only.
 */
export const PALETTE = [
  '#0072B2', // blue
  '#E69F00', // orange
  '#009E73', // bluish green
  '#D55E00', // vermillion
  '#56B4E9', // sky blue
  '#CC79A7', // reddish purple
  '#F0E442', // yellow
  '#000000', // black
] as const;

const FONT_SIZE = 12;
const TITLE_SIZE = 16;
const SMALL_SIZE = 11;
const PADDING = 16;
const TEXT_COLOUR = '#222';
const MUTED_COLOUR = '#555';
const GRID_COLOUR = '#e3e3e3';
const AXIS_COLOUR = '#888';

export function colourAt(index: number): string {
  return PALETTE[index % PALETTE.length]!;
}

export function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&apos;');
}

/**
 * Tick values for an axis covering [min, max]: steps of 1, 2 or 5 times a power of ten,
 * at most about `maxTicks` intervals, the first tick at or below min, the last at or
 * above max (so the last tick is also the end of the axis).
 */
export function niceTicks(min: number, max: number, maxTicks = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) throw new RangeError(`axis over [${min}, ${max}]`);
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    // A single value still needs an axis: widen it around that value (or up from zero).
    if (min === 0) max = 1;
    else if (min > 0) min = 0;
    else max = 0;
  }
  const step = niceStep((max - min) / Math.max(1, maxTicks));
  const decimals = stepDecimals(step);
  const first = Math.floor(min / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; ; i++) {
    // Rounded to the step's precision, so 0.1 + 0.2 shows as 0.3, not 0.30000000000000004.
    const tick = Number((first + i * step).toFixed(decimals));
    ticks.push(tick);
    if (tick >= max - step * 1e-9) break;
  }
  return ticks;
}

/** The smallest of 1, 2, 5 × 10^k that is at least `raw`. */
export function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) throw new RangeError(`tick step ${raw}`);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalized = raw / magnitude;
  // Tolerance: 0.2 / 0.1 is 2.0000000000000004, which must still be a step of 2.
  const factor = [1, 2, 5].find((f) => normalized <= f * (1 + 1e-9)) ?? 10;
  return factor * magnitude;
}

function stepDecimals(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/** A tick label: as many decimals as the step between ticks needs, thousands grouped. */
export function formatTick(value: number, ticks: readonly number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 1;
  const decimals = stepDecimals(step);
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

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

/**
 * An estimate of the rendered width of a line of sans-serif text (generous, from the
 * advance widths of DejaVu Sans, which is wider than Arial/Helvetica): enough to reserve
 * room for labels so they are neither clipped nor laid over each other.
 */
export function textWidth(text: string, fontSize = FONT_SIZE): number {
  let ems = 0;
  for (const ch of text) {
    if (" .,:;!|'()[]ijlft".includes(ch)) ems += 0.36;
    else if ('mwMW@%'.includes(ch)) ems += 0.98;
    else if (ch >= 'A' && ch <= 'Z') ems += 0.76;
    else ems += 0.64;
  }
  return ems * fontSize;
}

/** Breaks a line at spaces so that each piece fits in `maxWidth` (by textWidth). */
export function wrapText(line: string, maxWidth: number, fontSize = FONT_SIZE): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of line.split(' ')) {
    const candidate = current ? `${current} ${word}` : word;
    if (current && textWidth(candidate, fontSize) > maxWidth) {
      lines.push(current);
      current = word;
    } else {
      current = candidate;
    }
  }
  if (current) lines.push(current);
  return lines;
}

/** Coordinates rounded to 0.01 px: precise enough on screen, and keeps the files small. */
function px(value: number): string {
  return String(Math.round(value * 100) / 100);
}

function linear(domainMin: number, domainMax: number, rangeMin: number, rangeMax: number) {
  const span = domainMax - domainMin || 1;
  return (value: number) => rangeMin + ((value - domainMin) / span) * (rangeMax - rangeMin);
}

interface TextOptions {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'bold';
  fill?: string;
  className?: string;
  /** A white outline behind the letters, so a label stays legible over lines and grid. */
  halo?: boolean;
  rotate?: number;
}

function text(x: number, y: number, content: string, options: TextOptions = {}): string {
  const attributes = [
    options.className ? `class="${options.className}"` : '',
    `x="${px(x)}"`,
    `y="${px(y)}"`,
    options.size && options.size !== FONT_SIZE ? `font-size="${options.size}"` : '',
    options.anchor && options.anchor !== 'start' ? `text-anchor="${options.anchor}"` : '',
    options.weight ? `font-weight="${options.weight}"` : '',
    `fill="${options.fill ?? TEXT_COLOUR}"`,
    options.halo ? 'stroke="#fff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"' : '',
    options.rotate ? `transform="rotate(${options.rotate} ${px(x)} ${px(y)})"` : '',
  ].filter(Boolean);
  return `<text ${attributes.join(' ')}>${escapeXml(content)}</text>`;
}

/** Black or white, whichever reads better on the given fill (relative luminance). */
function textColourOn(fill: string): string {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(fill.slice(i, i + 2), 16) / 255) as [
    number,
    number,
    number,
  ];
  const channel = (c: number) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  return luminance > 0.22 ? '#000' : '#fff';
}

type LegendMark = 'swatch' | 'line' | 'dashed-line';

interface LegendItem {
  name: string;
  colour: string;
  mark: LegendMark;
  marker?: MarkerShape;
}

interface Frame {
  width: number;
  title: string;
  subtitle?: string | string[];
  legend: LegendItem[];
}

/**
 * Title, subtitle and legend, top to bottom; returns the elements and the y where the
 * plot may begin. The legend wraps onto further rows rather than running off the edge.
 */
function header(frame: Frame): { parts: string[]; bottom: number } {
  const parts: string[] = [];
  let y = PADDING + TITLE_SIZE;
  parts.push(text(PADDING, y, frame.title, { size: TITLE_SIZE, weight: 'bold', className: 'title' }));
  const subtitles = frame.subtitle === undefined ? [] : [frame.subtitle].flat();
  for (const line of subtitles.flatMap((s) => wrapText(s, frame.width - 2 * PADDING))) {
    y += FONT_SIZE + 6;
    parts.push(text(PADDING, y, line, { fill: MUTED_COLOUR, className: 'subtitle' }));
  }
  if (frame.legend.length > 0) {
    y += 14;
    const rowHeight = FONT_SIZE + 8;
    let x = PADDING;
    let rowTop = y;
    for (const item of frame.legend) {
      const markWidth = item.mark === 'swatch' ? 12 : 26;
      const itemWidth = markWidth + 6 + textWidth(item.name) + 18;
      if (x > PADDING && x + itemWidth > frame.width - PADDING) {
        x = PADDING;
        rowTop += rowHeight;
      }
      const middle = rowTop + 6;
      const marks: string[] = [];
      if (item.mark === 'swatch') {
        marks.push(`<rect x="${px(x)}" y="${px(rowTop)}" width="12" height="12" fill="${item.colour}"/>`);
      } else {
        const dash = item.mark === 'dashed-line' ? ' stroke-dasharray="5 3"' : '';
        marks.push(
          `<line x1="${px(x)}" y1="${px(middle)}" x2="${px(x + markWidth)}" y2="${px(middle)}" stroke="${item.colour}" stroke-width="2"${dash}/>`,
        );
        if (item.marker) marks.push(marker(item.marker, x + markWidth / 2, middle, item.colour, ''));
      }
      parts.push(
        `<g class="legend-item">${marks.join('')}${text(x + markWidth + 6, middle + 4, item.name)}</g>`,
      );
      x += itemWidth;
    }
    y = rowTop + rowHeight;
  }
  return { parts, bottom: y + 8 };
}

function svgDocument(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${px(width)} ${px(height)}" width="${px(width)}" height="${px(height)}" font-family="sans-serif" font-size="${FONT_SIZE}">`,
    `<title>${escapeXml(title)}</title>`,
    // An opaque background: the charts stay readable on pages with a dark theme.
    `<rect class="background" width="100%" height="100%" fill="#fff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Vertical grid lines and the value axis under a horizontal-bar plot. */
function valueAxisBelow(
  ticks: number[],
  x: (value: number) => number,
  plotTop: number,
  plotBottom: number,
  label: string,
): { parts: string[]; bottom: number } {
  const parts: string[] = [];
  for (const tick of ticks) {
    const tx = x(tick);
    parts.push(
      `<line class="grid" x1="${px(tx)}" y1="${px(plotTop)}" x2="${px(tx)}" y2="${px(plotBottom)}" stroke="${GRID_COLOUR}"/>`,
      `<line x1="${px(tx)}" y1="${px(plotBottom)}" x2="${px(tx)}" y2="${px(plotBottom + 4)}" stroke="${AXIS_COLOUR}"/>`,
      text(tx, plotBottom + 17, formatTick(tick, ticks), {
        anchor: 'middle',
        fill: MUTED_COLOUR,
        className: 'tick',
      }),
    );
  }
  const left = x(ticks[0]!);
  const right = x(ticks.at(-1)!);
  parts.push(
    `<line class="axis" x1="${px(left)}" y1="${px(plotBottom)}" x2="${px(right)}" y2="${px(plotBottom)}" stroke="${AXIS_COLOUR}"/>`,
    text((left + right) / 2, plotBottom + 36, label, { anchor: 'middle', className: 'axis-label' }),
  );
  return { parts, bottom: plotBottom + 36 };
}

function footnoteAt(y: number, footnote: string | undefined): { parts: string[]; bottom: number } {
  if (!footnote) return { parts: [], bottom: y };
  const line = y + 22;
  return {
    parts: [text(PADDING, line, footnote, { size: SMALL_SIZE, fill: MUTED_COLOUR, className: 'footnote' })],
    bottom: line,
  };
}

// ---------------------------------------------------------------------------------------
// Grouped bars

export interface BarSeries {
  name: string;
  /** One value per category; null (or not finite) where the series has none: no bar. */
  values: (number | null)[];
  /** Whisker ends per category, e.g. the first and third quartile; absent: no whisker. */
  low?: (number | null)[];
  high?: (number | null)[];
}

/** What every chart has around its plot: titles, value format, footnote, width. */
export interface ChartSpecBase {
  title: string;
  subtitle?: string | string[];
  formatValue?: (value: number) => string;
  footnote?: string;
  width?: number;
}

export interface BarChartSpec extends ChartSpecBase {
  categories: string[];
  series: BarSeries[];
  /** Label of the value axis, with the unit: "milliseconds (median)". */
  axisLabel: string;
  /** Written in the slot of a missing value, so an absent bar does not read as zero. */
  missingLabel?: string;
}

/**
 * Where the bars of a horizontal bar chart may run: right of the category labels, left of
 * the widest value label and of the right half of the last tick label (it is centred on
 * the axis's end); and the scale from value to x.
 */
function horizontalValueAxis(
  spec: { title: string; categories: string[] },
  width: number,
  ticks: number[],
  valueLabelRoom: number,
): { plotLeft: number; x: (value: number) => number } {
  const plotLeft = PADDING + Math.max(0, ...spec.categories.map((c) => textWidth(c))) + 10;
  const plotRight =
    width - PADDING - Math.max(valueLabelRoom + 6, textWidth(formatTick(ticks.at(-1)!, ticks)) / 2);
  if (plotRight - plotLeft < 100) throw new RangeError(`${spec.title}: labels leave no room for the bars`);
  return { plotLeft, x: linear(0, ticks.at(-1)!, plotLeft, plotRight) };
}

const BAR_THICKNESS = 18;
const BAR_GAP = 3;
const GROUP_GAP = 16;

function present(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function checkNotNegative(values: Iterable<number | null | undefined>, what: string): void {
  for (const value of values) {
    if (present(value) && value < 0) throw new RangeError(`${what}: negative value ${value} on a bar chart`);
  }
}

/**
 * Categories down the left, one horizontal bar per series in each category's group, the
 * value at the end of each bar (past its whisker, if any), a value axis from zero below.
 */
export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? 760;
  const format = spec.formatValue ?? formatValue;
  for (const series of spec.series) {
    checkNotNegative([...series.values, ...(series.low ?? []), ...(series.high ?? [])], series.name);
  }
  const top = header({
    width,
    title: spec.title,
    subtitle: spec.subtitle,
    legend: spec.series.map((s, i) => ({ name: s.name, colour: colourAt(i), mark: 'swatch' })),
  });

  const ends = spec.series.flatMap((s) => [...s.values, ...(s.high ?? [])]).filter(present);
  const ticks = niceTicks(0, Math.max(0, ...ends));
  const labels = spec.series.flatMap((s) => s.values.filter(present).map(format));
  const labelRoom = Math.max(0, ...labels.map((l) => textWidth(l, SMALL_SIZE)));
  const { plotLeft, x } = horizontalValueAxis(spec, width, ticks, labelRoom);

  const plotTop = top.bottom + 4;
  const groupHeight = spec.series.length * BAR_THICKNESS + (spec.series.length - 1) * BAR_GAP;
  const categoryLabels: string[] = [];
  const bars: string[] = [];
  spec.categories.forEach((category, c) => {
    const groupTop = plotTop + GROUP_GAP / 2 + c * (groupHeight + GROUP_GAP);
    categoryLabels.push(
      text(plotLeft - 8, groupTop + groupHeight / 2 + 4, category, { anchor: 'end', className: 'category' }),
    );
    spec.series.forEach((series, s) => {
      const barTop = groupTop + s * (BAR_THICKNESS + BAR_GAP);
      const middle = barTop + BAR_THICKNESS / 2;
      const value = series.values[c];
      if (!present(value)) {
        if (spec.missingLabel) {
          bars.push(
            text(plotLeft + 4, middle + 4, spec.missingLabel, {
              size: SMALL_SIZE,
              fill: MUTED_COLOUR,
              className: 'missing',
            }),
          );
        }
        return;
      }
      const colour = colourAt(s);
      bars.push(
        `<rect class="bar" data-series="${s}" data-category="${c}" x="${px(plotLeft)}" y="${px(barTop)}" width="${px(x(value) - plotLeft)}" height="${BAR_THICKNESS}" fill="${colour}"><title>${escapeXml(`${series.name}, ${category}: ${format(value)}`)}</title></rect>`,
      );
      let labelAt = x(value);
      const low = series.low?.[c];
      const high = series.high?.[c];
      if (present(low) && present(high)) {
        const [x1, x2] = [x(low), x(high)];
        const cap = BAR_THICKNESS / 2 - 2;
        bars.push(
          `<path class="whisker" d="M${px(x1)} ${px(middle)}H${px(x2)}M${px(x1)} ${px(middle - cap / 2)}v${px(cap)}M${px(x2)} ${px(middle - cap / 2)}v${px(cap)}" stroke="${TEXT_COLOUR}" stroke-width="1.5" fill="none"/>`,
        );
        labelAt = Math.max(labelAt, x2);
      }
      bars.push(
        text(labelAt + 5, middle + 4, format(value), { size: SMALL_SIZE, className: 'value', halo: true }),
      );
    });
  });
  const plotBottom = plotTop + spec.categories.length * (groupHeight + GROUP_GAP);
  const axis = valueAxisBelow(ticks, x, plotTop, plotBottom, spec.axisLabel);
  const foot = footnoteAt(axis.bottom, spec.footnote);
  // Grid first, then the bars with their whiskers and value labels over it.
  return svgDocument(width, foot.bottom + PADDING, spec.title, [
    ...top.parts,
    ...axis.parts,
    ...categoryLabels,
    ...bars,
    ...foot.parts,
  ]);
}

// ---------------------------------------------------------------------------------------
// Stacked bars

export interface StackSegment {
  name: string;
  /** One value per category; 0, null or not finite: no segment in that bar. */
  values: (number | null)[];
}

export interface StackedBarChartSpec extends ChartSpecBase {
  categories: string[];
  /** In stacking order, left to right; each keeps its colour (by position) in every bar. */
  segments: StackSegment[];
  axisLabel: string;
}

const STACK_THICKNESS = 28;
const STACK_GAP = 14;

/**
 * One horizontal bar per category, its segments end to end; a segment's value is
 * written inside it where it fits, the bar's total at its end. Segments that are empty
 * in every bar are left out of the legend too.
 */
export function stackedBarChart(spec: StackedBarChartSpec): string {
  const width = spec.width ?? 760;
  const format = spec.formatValue ?? formatValue;
  for (const segment of spec.segments) checkNotNegative(segment.values, segment.name);
  const shown = (value: number | null | undefined): value is number => present(value) && value > 0;
  const totals = spec.categories.map((_, c) =>
    spec.segments.reduce((sum, segment) => sum + (shown(segment.values[c]) ? segment.values[c]! : 0), 0),
  );
  const used = spec.segments
    .map((segment, index) => ({ segment, colour: colourAt(index) }))
    .filter(({ segment }) => segment.values.some(shown));
  const top = header({
    width,
    title: spec.title,
    subtitle: spec.subtitle,
    legend: used.map(({ segment, colour }) => ({ name: segment.name, colour, mark: 'swatch' })),
  });

  const ticks = niceTicks(0, Math.max(0, ...totals));
  const labelRoom = Math.max(...totals.map((t) => textWidth(format(t), SMALL_SIZE)));
  const { plotLeft, x } = horizontalValueAxis(spec, width, ticks, labelRoom);

  const plotTop = top.bottom + 4;
  const body: string[] = [];
  spec.categories.forEach((category, c) => {
    const barTop = plotTop + STACK_GAP / 2 + c * (STACK_THICKNESS + STACK_GAP);
    const middle = barTop + STACK_THICKNESS / 2;
    body.push(text(plotLeft - 8, middle + 4, category, { anchor: 'end', className: 'category' }));
    let sum = 0;
    for (const { segment, colour } of used) {
      const value = segment.values[c];
      if (!shown(value)) continue;
      const x1 = x(sum);
      const x2 = x(sum + value);
      sum += value;
      body.push(
        `<rect class="segment" data-segment="${escapeXml(segment.name)}" data-category="${c}" x="${px(x1)}" y="${px(barTop)}" width="${px(x2 - x1)}" height="${STACK_THICKNESS}" fill="${colour}" stroke="#fff" stroke-width="0.75"><title>${escapeXml(`${category}, ${segment.name}: ${format(value)}`)}</title></rect>`,
      );
      const label = format(value);
      if (textWidth(label, SMALL_SIZE) + 6 <= x2 - x1) {
        body.push(
          text((x1 + x2) / 2, middle + 4, label, {
            size: SMALL_SIZE,
            anchor: 'middle',
            fill: textColourOn(colour),
            className: 'segment-value',
          }),
        );
      }
    }
    body.push(
      text(x(sum) + 5, middle + 4, format(sum), { size: SMALL_SIZE, weight: 'bold', className: 'total' }),
    );
  });
  const plotBottom = plotTop + spec.categories.length * (STACK_THICKNESS + STACK_GAP);
  const axis = valueAxisBelow(ticks, x, plotTop, plotBottom, spec.axisLabel);
  const foot = footnoteAt(axis.bottom, spec.footnote);
  return svgDocument(width, foot.bottom + PADDING, spec.title, [
    ...top.parts,
    ...axis.parts,
    ...body,
    ...foot.parts,
  ]);
}

// ---------------------------------------------------------------------------------------
// Lines

export type MarkerShape = 'circle' | 'square' | 'diamond' | 'triangle';
/** A different marker for each series, so the lines differ by more than their colour. */
const MARKERS: readonly MarkerShape[] = ['circle', 'square', 'diamond', 'triangle'];

function marker(shape: MarkerShape, cx: number, cy: number, colour: string, className: string): string {
  const cls = className ? `class="${className}" ` : '';
  const r = 4.5;
  switch (shape) {
    case 'circle':
      return `<circle ${cls}cx="${px(cx)}" cy="${px(cy)}" r="${r}" fill="${colour}" stroke="#fff" stroke-width="1"/>`;
    case 'square':
      return `<rect ${cls}x="${px(cx - r)}" y="${px(cy - r)}" width="${2 * r}" height="${2 * r}" fill="${colour}" stroke="#fff" stroke-width="1"/>`;
    case 'diamond': {
      const d = r * 1.35;
      return `<path ${cls}d="M${px(cx)} ${px(cy - d)}L${px(cx + d)} ${px(cy)}L${px(cx)} ${px(cy + d)}L${px(cx - d)} ${px(cy)}Z" fill="${colour}" stroke="#fff" stroke-width="1"/>`;
    }
    case 'triangle': {
      const d = r * 1.3;
      return `<path ${cls}d="M${px(cx)} ${px(cy - d)}L${px(cx + d)} ${px(cy + d * 0.8)}L${px(cx - d)} ${px(cy + d * 0.8)}Z" fill="${colour}" stroke="#fff" stroke-width="1"/>`;
    }
  }
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
  /** Where to put x ticks, e.g. exactly at the measured sizes; default: nice ticks. */
  xTicks?: number[];
  /** A horizontal dashed reference line, e.g. { value: 150, label: 'target 150 MB' }. */
  target?: { value: number; label: string };
  /** Write each point's value next to its marker (where it does not collide). Default true. */
  pointLabels?: boolean;
  /** Height of the plot area alone. */
  plotHeight?: number;
}

interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

function overlaps(a: Box, b: Box): boolean {
  return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

function textBox(
  x: number,
  baseline: number,
  content: string,
  size: number,
  anchor: 'start' | 'middle' | 'end',
): Box {
  const w = textWidth(content, size);
  const left = anchor === 'start' ? x : anchor === 'middle' ? x - w / 2 : x - w;
  return { left, right: left + w, top: baseline - size, bottom: baseline + size * 0.25 };
}

/**
 * Lines with a marker at each point over a linear x axis, y from zero. The optional target
 * line is labelled at whichever end of the plot leaves the label clear of the data.
 */
export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 760;
  const plotHeight = spec.plotHeight ?? 260;
  const format = spec.formatValue ?? formatValue;
  const showPointLabels = spec.pointLabels ?? true;
  const top = header({
    width,
    title: spec.title,
    subtitle: spec.subtitle,
    legend: spec.series.map((s, i) => ({
      name: s.name,
      colour: colourAt(i),
      mark: s.dashed ? 'dashed-line' : 'line',
      marker: MARKERS[i % MARKERS.length]!,
    })),
  });

  const points = spec.series.flatMap((s) => s.points);
  for (const point of points) {
    if (!Number.isFinite(point.x) || !Number.isFinite(point.y))
      throw new RangeError(`point (${point.x}, ${point.y})`);
  }
  const ys = points.map((p) => p.y);
  if (spec.target) ys.push(spec.target.value);
  const yTicks = niceTicks(Math.min(0, ...ys), Math.max(0, ...ys));
  const xs = points.map((p) => p.x);
  const givenXTicks = spec.xTicks ? [...spec.xTicks].sort((a, b) => a - b) : undefined;
  let xTicks = givenXTicks ?? niceTicks(Math.min(0, ...xs), Math.max(...xs, 1));
  // The x axis starts at zero (or below, for negative x), like the y axis.
  const xMin = Math.min(0, ...xs, ...xTicks);
  const xMax = Math.max(...xs, ...xTicks);
  // The origin gets a tick of its own, unless it sits so close to the first given tick
  // (under an eighth of the axis) that the two labels would read as one cramped pair.
  const firstGiven = givenXTicks?.[0];
  if (firstGiven !== undefined && firstGiven !== xMin && firstGiven - xMin >= (xMax - xMin) / 8) {
    xTicks = [xMin, ...xTicks];
  }

  const yTickLabels = yTicks.map((t) => formatTick(t, yTicks));
  // Room on the left for the rotated axis label and the widest tick label.
  const plotLeft = PADDING + FONT_SIZE + 10 + Math.max(...yTickLabels.map((l) => textWidth(l))) + 8;
  // Room on the right for half of a label centred on the last point, or of the last tick.
  const lastLabels = showPointLabels
    ? spec.series.flatMap((s) => s.points.filter((p) => p.x === xMax).map((p) => format(p.y)))
    : [];
  const plotRight =
    width -
    PADDING -
    Math.max(8, ...lastLabels.map((l) => textWidth(l, SMALL_SIZE) / 2), textWidth(String(xMax)) / 2);
  const plotTop = top.bottom + 10;
  const plotBottom = plotTop + plotHeight;
  const x = linear(xMin, xMax, plotLeft, plotRight);
  const y = linear(yTicks[0]!, yTicks.at(-1)!, plotBottom, plotTop);

  const grid: string[] = [];
  yTicks.forEach((tick, i) => {
    const ty = y(tick);
    grid.push(
      `<line class="grid" x1="${px(plotLeft)}" y1="${px(ty)}" x2="${px(plotRight)}" y2="${px(ty)}" stroke="${GRID_COLOUR}"/>`,
      text(plotLeft - 6, ty + 4, yTickLabels[i]!, { anchor: 'end', fill: MUTED_COLOUR, className: 'y-tick' }),
    );
  });
  const xTickLabels = xTicks.map((t) => (givenXTicks ? formatValue(t) : formatTick(t, xTicks)));
  xTicks.forEach((tick, i) => {
    const tx = x(tick);
    grid.push(
      `<line x1="${px(tx)}" y1="${px(plotBottom)}" x2="${px(tx)}" y2="${px(plotBottom + 4)}" stroke="${AXIS_COLOUR}"/>`,
      text(tx, plotBottom + 17, xTickLabels[i]!, {
        anchor: 'middle',
        fill: MUTED_COLOUR,
        className: 'x-tick',
      }),
    );
  });
  grid.push(
    `<line class="axis" x1="${px(plotLeft)}" y1="${px(plotBottom)}" x2="${px(plotRight)}" y2="${px(plotBottom)}" stroke="${AXIS_COLOUR}"/>`,
    `<line class="axis" x1="${px(plotLeft)}" y1="${px(plotTop)}" x2="${px(plotLeft)}" y2="${px(plotBottom)}" stroke="${AXIS_COLOUR}"/>`,
    text((plotLeft + plotRight) / 2, plotBottom + 36, spec.xLabel, {
      anchor: 'middle',
      className: 'axis-label',
    }),
    text(PADDING + FONT_SIZE, (plotTop + plotBottom) / 2, spec.yLabel, {
      anchor: 'middle',
      rotate: -90,
      className: 'axis-label',
    }),
  );

  // Everything a label must stay clear of: markers first, then each label placed.
  const taken: Box[] = points.map((p) => ({
    left: x(p.x) - 7,
    right: x(p.x) + 7,
    top: y(p.y) - 7,
    bottom: y(p.y) + 7,
  }));
  const labels: string[] = [];

  const lines: string[] = [];
  if (spec.target) {
    const ty = y(spec.target.value);
    lines.push(
      `<line class="target" x1="${px(plotLeft)}" y1="${px(ty)}" x2="${px(plotRight)}" y2="${px(ty)}" stroke="${TEXT_COLOUR}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
    const candidates = [
      { x: plotRight - 4, baseline: ty - 5, anchor: 'end' as const },
      { x: plotLeft + 4, baseline: ty - 5, anchor: 'start' as const },
      { x: plotRight - 4, baseline: ty + 14, anchor: 'end' as const },
      { x: plotLeft + 4, baseline: ty + 14, anchor: 'start' as const },
    ];
    const boxes = candidates.map((c) => textBox(c.x, c.baseline, spec.target!.label, FONT_SIZE, c.anchor));
    const clear = boxes.findIndex((box) => !taken.some((t) => overlaps(box, t)));
    const chosen = clear >= 0 ? clear : 0;
    const place = candidates[chosen]!;
    taken.push(boxes[chosen]!);
    labels.push(
      text(place.x, place.baseline, spec.target.label, {
        anchor: place.anchor,
        className: 'target-label',
        halo: true,
      }),
    );
  }

  spec.series.forEach((series, i) => {
    const colour = colourAt(i);
    const sorted = [...series.points].sort((a, b) => a.x - b.x);
    const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
    lines.push(
      `<polyline class="series" data-series="${i}" points="${sorted.map((p) => `${px(x(p.x))},${px(y(p.y))}`).join(' ')}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`,
    );
    for (const p of sorted)
      lines.push(marker(MARKERS[i % MARKERS.length]!, x(p.x), y(p.y), colour, 'marker'));
  });

  if (showPointLabels) {
    // Where series meet at a point with the same value, one label says it for all.
    const said = new Set<string>();
    spec.series.forEach((series) => {
      for (const p of series.points) {
        const content = format(p.y);
        const key = `${p.x}:${content}`;
        if (said.has(key)) continue;
        const candidates = [y(p.y) - 10, y(p.y) + 20].map((baseline) =>
          textBox(x(p.x), baseline, content, SMALL_SIZE, 'middle'),
        );
        // A label may not rise into the legend above the plot.
        const box = candidates.find((b) => b.top >= plotTop - 12 && !taken.some((t) => overlaps(b, t)));
        if (!box) continue; // No room clear of the other labels and markers.
        said.add(key);
        taken.push(box);
        labels.push(
          text(x(p.x), box.bottom - SMALL_SIZE * 0.25, content, {
            size: SMALL_SIZE,
            anchor: 'middle',
            className: 'value',
            halo: true,
          }),
        );
      }
    });
  }

  const foot = footnoteAt(plotBottom + 36, spec.footnote);
  return svgDocument(width, foot.bottom + PADDING, spec.title, [
    ...top.parts,
    ...grid,
    ...lines,
    ...labels,
    ...foot.parts,
  ]);
}

// ---------------------------------------------------------------------------------------

/** Writes bench/results/<name>.svg, beside <name>.json; returns the file's path. */
export function writeChart(name: string, svg: string): string {
  return writeResultFile(`${name}.svg`, svg);
}
