import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  barChart,
  escapeXml,
  formatTick,
  formatValue,
  lineChart,
  niceStep,
  niceTicks,
  stackedBarChart,
  wrapText,
  textWidth,
} from '../../bench/lib/chart.js';
import {
  CHARTS_BY_RESULT,
  lifecycleCharts,
  scaleCharts,
  type LifecycleResult,
  type ScaleResult,
} from '../../bench/lib/bench-charts.js';

/** The attributes of every element `<tag class="className" …>` in document order. */
function elements(svg: string, tag: string, className: string): Record<string, string>[] {
  const found: Record<string, string>[] = [];
  for (const match of svg.matchAll(new RegExp(`<${tag} class="${className}"([^>]*)>`, 'g'))) {
    const attributes: Record<string, string> = {};
    for (const [, name, value] of match[1]!.matchAll(/([\w-]+)="([^"]*)"/g)) attributes[name!] = value!;
    found.push(attributes);
  }
  return found;
}

const num = (attributes: Record<string, string>, name: string) => Number(attributes[name]);

/** The text of every <text class="className"> element, unescaped enough for comparisons. */
function texts(svg: string, className: string): string[] {
  return [...svg.matchAll(new RegExp(`<text class="${className}"[^>]*>([^<]*)</text>`, 'g'))].map(
    (m) => m[1]!,
  );
}

function assertClose(actual: number, expected: number, tolerance: number, message?: string) {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${message ?? ''} ${actual} ≉ ${expected}`);
}

describe('niceTicks', () => {
  it('steps by 1, 2 or 5 times a power of ten and covers the range', () => {
    assert.deepEqual(niceTicks(0, 367), [0, 100, 200, 300, 400]);
    assert.deepEqual(niceTicks(0, 18261), [0, 5000, 10000, 15000, 20000]);
    assert.deepEqual(niceTicks(0, 0.724), [0, 0.2, 0.4, 0.6, 0.8]);
    assert.deepEqual(niceTicks(0, 6.07), [0, 2, 4, 6, 8]);
    assert.deepEqual(niceTicks(30, 75), [30, 40, 50, 60, 70, 80]);
  });

  it('keeps an exact tick when the maximum falls on one', () => {
    assert.deepEqual(niceTicks(0, 500), [0, 100, 200, 300, 400, 500]);
    assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  });

  it('gives round numbers, not floating-point remainders', () => {
    for (const tick of niceTicks(0, 0.3, 3)) assert.equal(String(tick).length <= 3, true, String(tick));
    assert.deepEqual(niceTicks(0, 0.3, 3), [0, 0.1, 0.2, 0.3]);
  });

  it('widens an empty range instead of dividing by zero', () => {
    assert.deepEqual(niceTicks(0, 0), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    const ticks = niceTicks(42, 42);
    assert.equal(ticks[0], 0);
    assert.ok(ticks.at(-1)! >= 42);
  });

  it('handles negative ranges and swapped bounds', () => {
    assert.deepEqual(niceTicks(-7, 12), [-10, -5, 0, 5, 10, 15]);
    assert.deepEqual(niceTicks(367, 0), niceTicks(0, 367));
  });

  it('rejects ranges that are not numbers', () => {
    assert.throws(() => niceTicks(0, NaN), RangeError);
    assert.throws(() => niceTicks(0, Infinity), RangeError);
  });

  it('niceStep picks the smallest 1-2-5 step at least as large as asked', () => {
    assert.equal(niceStep(0.7), 1);
    assert.equal(niceStep(1), 1);
    assert.equal(niceStep(1.01), 2);
    assert.equal(niceStep(3), 5);
    assert.equal(niceStep(73.4), 100);
    assert.equal(niceStep(0.2 / 0.1), 2);
    assert.throws(() => niceStep(0), RangeError);
  });
});

describe('labels', () => {
  it('escapes the characters that would end or break the markup', () => {
    assert.equal(escapeXml('p50 < 1 & p99 > 2'), 'p50 &lt; 1 &amp; p99 &gt; 2');
    assert.equal(escapeXml(`say "hi" 'there'`), 'say &quot;hi&quot; &apos;there&apos;');
    assert.equal(
      escapeXml('&amp;'),
      '&amp;amp;',
      'already escaped text is escaped again, not passed through',
    );
  });

  it('formats ticks with the decimals their step needs', () => {
    assert.equal(formatTick(0.5, [0, 0.5, 1]), '0.5');
    assert.equal(formatTick(1, [0, 0.5, 1]), '1.0');
    assert.equal(formatTick(15000, [0, 5000, 10000, 15000]), '15,000');
  });

  it('formats values with about three significant digits', () => {
    assert.equal(formatValue(367.416), '367');
    assert.equal(formatValue(40.656), '40.7');
    assert.equal(formatValue(1.497), '1.50');
    assert.equal(formatValue(0.0123), '0.012');
    assert.equal(formatValue(16), '16');
    assert.equal(formatValue(18261), '18,261');
  });

  it('wraps a long line at spaces within the width', () => {
    const line = 'Median of 7 trials each, interleaved; whiskers: interquartile range centred on the median';
    const lines = wrapText(line, 300);
    assert.ok(lines.length > 1);
    assert.equal(lines.join(' '), line);
    for (const piece of lines) assert.ok(textWidth(piece) <= 300, piece);
  });
});

describe('barChart', () => {
  const spec = {
    title: 'Floor & modeldock <ms>',
    categories: ['DEPLOY_CREATE', 'TERMINATE', 'TEMP'],
    series: [
      { name: 'engine floor', values: [300, 100, 500], low: [290, 90, 480], high: [310, 120, 520] },
      { name: 'modeldock', values: [330, 150, 550] },
      { name: 'modeldock + warm pool', values: [40, null, 250] },
    ],
    axisLabel: 'milliseconds',
    missingLabel: 'n/a',
  };
  const svg = barChart(spec);

  it('is a standalone SVG with a viewBox, an escaped title and a sans-serif font', () => {
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" viewBox="0 0 \d+(\.\d+)? \d+(\.\d+)?"/);
    assert.match(svg, /font-family="sans-serif"/);
    assert.ok(svg.includes('Floor &amp; modeldock &lt;ms&gt;'));
    assert.ok(!svg.includes('<ms>'));
  });

  it('draws one rect per value present, none for a missing one', () => {
    const bars = elements(svg, 'rect', 'bar');
    assert.equal(bars.length, 8);
    assert.equal(bars.filter((b) => b['data-series'] === '2').length, 2);
    assert.deepEqual(texts(svg, 'missing'), ['n/a']);
  });

  it('makes bar lengths proportional to the values, from a common zero', () => {
    const bars = elements(svg, 'rect', 'bar');
    const values = [300, 330, 40, 100, 150, 500, 550, 250]; // category by category, series in order
    const pxPerUnit = num(bars[0]!, 'width') / values[0]!;
    bars.forEach((bar, i) => {
      assertClose(num(bar, 'width'), values[i]! * pxPerUnit, 0.05, `bar ${i}`);
      assert.equal(bar.x, bars[0]!.x, 'every bar starts at zero');
    });
    // The axis ends at the next nice tick above the largest value: 600.
    assert.deepEqual(texts(svg, 'tick'), ['0', '200', '400', '600']);
  });

  it('gives each series one colour and one legend entry', () => {
    const bars = elements(svg, 'rect', 'bar');
    const fillOf = (series: string) =>
      new Set(bars.filter((b) => b['data-series'] === series).map((b) => b.fill));
    for (const series of ['0', '1', '2'])
      assert.equal(fillOf(series).size, 1, `series ${series}: one colour`);
    assert.equal(new Set(bars.map((b) => b.fill)).size, 3, 'series colours differ');
    assert.equal(svg.match(/class="legend-item"/g)?.length, 3);
  });

  it('draws whiskers only where both ends are given, spanning low to high', () => {
    const whiskers = elements(svg, 'path', 'whisker');
    assert.equal(whiskers.length, 3);
    const bars = elements(svg, 'rect', 'bar');
    const pxPerUnit = num(bars[0]!, 'width') / 300;
    const left = num(bars[0]!, 'x');
    const [, x1, x2] = /^M([\d.]+) [\d.]+H([\d.]+)/.exec(whiskers[0]!.d!)!.map(Number);
    assertClose(x1!, left + 290 * pxPerUnit, 0.05);
    assertClose(x2!, left + 310 * pxPerUnit, 0.05);
  });

  it('labels each bar with its value, and puts the category names in', () => {
    assert.equal(texts(svg, 'value').length, 8);
    assert.ok(texts(svg, 'value').includes('550'));
    assert.deepEqual(texts(svg, 'category'), spec.categories);
  });

  it('refuses negative values rather than drawing a bar the wrong way', () => {
    assert.throws(() => barChart({ ...spec, series: [{ name: 'x', values: [1, -1, 2] }] }), RangeError);
  });
});

describe('stackedBarChart', () => {
  const svg = stackedBarChart({
    title: 'Steps',
    categories: ['DEPLOY_CREATE', 'TEMP'],
    segments: [
      { name: 'create', values: [10, 10] },
      { name: 'start', values: [180, 180] },
      { name: 'infer', values: [null, 20] },
      { name: 'unused', values: [0, null] },
      { name: 'remove', values: [null, 130] },
    ],
    axisLabel: 'milliseconds',
  });

  it('draws one rect per non-empty segment', () => {
    const segments = elements(svg, 'rect', 'segment');
    assert.equal(segments.length, 2 + 4);
    assert.equal(segments.filter((s) => s['data-category'] === '0').length, 2);
  });

  it('stacks segments end to end, lengths proportional to values', () => {
    const segments = elements(svg, 'rect', 'segment');
    const temp = segments.filter((s) => s['data-category'] === '1');
    const values = [10, 180, 20, 130];
    // The scale from the whole bar: a short segment's width is too rounded to derive it from.
    const pxPerUnit = temp.reduce((sum, s) => sum + num(s, 'width'), 0) / 340;
    temp.forEach((segment, i) => {
      assertClose(num(segment, 'width'), values[i]! * pxPerUnit, 0.05, `segment ${i}`);
      if (i > 0) assertClose(num(segment, 'x'), num(temp[i - 1]!, 'x') + num(temp[i - 1]!, 'width'), 0.05);
    });
    assert.equal(temp[0]!.x, segments[0]!.x, 'both bars start at zero');
  });

  it('keeps a segment the same colour in every bar and leaves empty ones out of the legend', () => {
    const segments = elements(svg, 'rect', 'segment');
    const start = segments.filter((s) => s['data-segment'] === 'start');
    assert.equal(start.length, 2);
    assert.equal(start[0]!.fill, start[1]!.fill);
    assert.equal(svg.match(/class="legend-item"/g)?.length, 4);
    assert.ok(!svg.includes('>unused<'));
  });

  it('writes each bar’s total at its end', () => {
    assert.deepEqual(texts(svg, 'total'), ['190', '340']);
  });
});

describe('lineChart', () => {
  const svg = lineChart({
    title: 'Router memory',
    series: [
      {
        name: 'router RSS',
        points: [
          { x: 50, y: 107 },
          { x: 200, y: 151 },
          { x: 100, y: 128 },
        ],
      },
      { name: 'estimate', points: [{ x: 50, y: 20 }], dashed: true },
    ],
    xLabel: 'servers',
    yLabel: 'MiB',
    xTicks: [50, 100, 200],
    target: { value: 143, label: 'target 150 MB' },
  });

  it('draws one line per series through its points in x order, with a marker on each', () => {
    const lines = elements(svg, 'polyline', 'series');
    assert.equal(lines.length, 2);
    const points = lines[0]!.points!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    assert.equal(points.length, 3);
    assert.ok(points[0]![0] < points[1]![0] && points[1]![0] < points[2]![0], 'sorted by x');
    assert.equal(svg.match(/class="marker"/g)?.length, 4);
    assert.match(lines[1]!['stroke-dasharray'] ?? '', /\d/, 'the dashed series is dashed');
    assert.equal(lines[0]!['stroke-dasharray'], undefined);
  });

  it('places points linearly in x and y', () => {
    const [p50, p100, p200] = elements(svg, 'polyline', 'series')[0]!
      .points!.split(' ')
      .map((p) => p.split(',').map(Number) as [number, number]);
    // x from 0: 100 is twice as far from the origin as 50, 200 four times.
    const x0 = p50![0] - (p100![0] - p50![0]);
    assertClose(p200![0] - x0, 4 * (p50![0] - x0), 0.05);
    // y: the drop from 107 to 151 is 44/21 times the drop from 107 to 128.
    assertClose((p50![1] - p200![1]) / (p50![1] - p100![1]), 44 / 21, 0.01);
  });

  it('draws the dashed target line at its value, labelled', () => {
    const [target] = elements(svg, 'line', 'target');
    assert.ok(target, 'target line present');
    assert.match(target['stroke-dasharray'] ?? '', /\d/);
    assert.equal(target.y1, target.y2, 'horizontal');
    const [p50, p100] = elements(svg, 'polyline', 'series')[0]!
      .points!.split(' ')
      .map((p) => p.split(',').map(Number) as [number, number]);
    const perUnit = (p50![1] - p100![1]) / (128 - 107);
    assertClose(num(target, 'y1'), p50![1] - (143 - 107) * perUnit, 0.05);
    assert.deepEqual(texts(svg, 'target-label'), ['target 150 MB']);
  });

  it('puts x ticks at the given values and at the origin, y ticks from zero past the largest value', () => {
    assert.deepEqual(texts(svg, 'x-tick'), ['0', '50', '100', '200']);
    assert.deepEqual(texts(svg, 'y-tick'), ['0', '50', '100', '150', '200']);
  });

  it('leaves the origin unlabelled where its label would crowd the first given tick', () => {
    const crowded = lineChart({
      title: 't',
      series: [{ name: 'a', points: [1, 4, 16].map((x) => ({ x, y: x * 100 })) }],
      xLabel: 'at once',
      yLabel: 'ms',
      xTicks: [1, 4, 16],
    });
    assert.deepEqual(texts(crowded, 'x-tick'), ['1', '4', '16']);
  });

  it('writes a value once where series meet at the same point', () => {
    const meeting = lineChart({
      title: 't',
      series: [
        { name: 'a', points: [{ x: 1, y: 600 }] },
        { name: 'b', points: [{ x: 1, y: 600 }] },
      ],
      xLabel: 'x',
      yLabel: 'y',
    });
    assert.deepEqual(texts(meeting, 'value'), ['600']);
  });
});

describe('benchmark charts', () => {
  const spread = (median: number, iqr = 2, q?: [number, number]) =>
    q ? { median, iqr, q1: q[0], q3: q[1] } : { median, iqr };

  it('lifecycle: container and worker operations apart, warm pool where measured, steps stacked', () => {
    const result: LifecycleResult = {
      trials: 3,
      operations: [
        {
          operation: 'DEPLOY_CREATE',
          floor: spread(360, 10, [355, 365]),
          modeldock: spread(370, 20, [360, 380]),
        },
        { operation: 'DEPLOY_UNLOAD', floor: spread(1.5, 0.5, [1.2, 1.7]), modeldock: spread(4, 2, [3, 5]) },
        {
          operation: 'TERMINATE',
          floor: spread(140, 20, [130, 150]),
          modeldock: spread(160, 40, [140, 180]),
        },
      ],
      warm_pool: { DEPLOY_CREATE: { modeldock: spread(40, 8, [36, 44]) } },
      steps: {
        'DEPLOY_CREATE.start': spread(180),
        'DEPLOY_CREATE.create': spread(8),
        'DEPLOY_UNLOAD.unload': spread(1.6),
        'TERMINATE.stop': spread(150),
        'TERMINATE.remove': spread(7),
      },
    };
    const charts = lifecycleCharts(result);
    assert.deepEqual(Object.keys(charts).sort(), ['lifecycle', 'lifecycle-steps', 'lifecycle-worker-ops']);
    assert.deepEqual(texts(charts.lifecycle!, 'category'), ['DEPLOY_CREATE', 'TERMINATE']);
    assert.equal(elements(charts.lifecycle!, 'rect', 'bar').length, 5, 'no warm-pool bar for TERMINATE');
    assert.ok(charts.lifecycle!.includes('first to third quartile'));
    // Without a pool measurement the worker chart has only two series.
    assert.equal(charts['lifecycle-worker-ops']!.match(/class="legend-item"/g)?.length, 2);
    const steps = charts['lifecycle-steps']!;
    assert.deepEqual(texts(steps, 'category'), ['DEPLOY_CREATE', 'TERMINATE']);
    // Steps in the order an operation runs them, not the order of the keys.
    const order = elements(steps, 'rect', 'segment')
      .filter((s) => s['data-category'] === '0')
      .map((s) => s['data-segment']);
    assert.deepEqual(order, ['create', 'start']);
  });

  it('lifecycle: whiskers fall back to the IQR around the median for results without quartiles', () => {
    const charts = lifecycleCharts({
      trials: 1,
      operations: [{ operation: 'TEMP', floor: spread(500, 40), modeldock: spread(520, 100) }],
      warm_pool: {},
      steps: {},
    });
    assert.ok(charts.lifecycle!.includes('centred on the median'));
    assert.equal(elements(charts.lifecycle!, 'path', 'whisker').length, 2);
  });

  it('scale: targets drawn, and the one-after-the-other estimate is n times one alone', () => {
    const result: ScaleResult = {
      scale: [
        { servers: 50, router_rss_mib: 107, reconcile_pass: spread(31) },
        { servers: 200, router_rss_mib: 151, reconcile_pass: spread(73) },
      ],
      concurrency: [
        { at_once: 1, wall_ms: 600, per_operation: spread(600) },
        { at_once: 4, wall_ms: 1100, per_operation: spread(920) },
      ],
    };
    const charts = scaleCharts(result);
    assert.deepEqual(texts(charts['scale-memory']!, 'target-label'), ['target 150 MB (143 MiB)']);
    assert.deepEqual(texts(charts['scale-reconcile']!, 'target-label'), ['target 500 ms']);
    const lines = elements(charts['scale-concurrency']!, 'polyline', 'series');
    assert.equal(lines.length, 3);
    assert.ok(texts(charts['scale-concurrency']!, 'value').includes('2,400 ms'));
  });

  it('checks a result before drawing it, naming the field that does not fit', () => {
    const broken = { scale: [{ servers: 50, reconcile_pass: { median: 31, iqr: 2 } }], concurrency: [] };
    assert.throws(
      () => CHARTS_BY_RESULT.scale!(broken),
      (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /\/scale\/0\/router_rss_mib/);
        return true;
      },
    );
    // Fields the charts do not read may come and go.
    const extra = {
      scale: [],
      concurrency: [{ at_once: 1, wall_ms: 5, per_operation: { median: 5, iqr: 0 } }],
      x: 1,
    };
    assert.ok(CHARTS_BY_RESULT.scale!(extra)['scale-concurrency']);
  });
});
