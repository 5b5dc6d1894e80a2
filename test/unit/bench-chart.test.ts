/**
 * The benchmark charts: built as Vega-Lite specs from the results and rendered to SVG by
 * the project's one charting library; each SVG must carry the data it was drawn from
 * (categories, series, values as labels, targets, titles).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderSvg } from '../../src/charts/vega-svg.js';
import { formatValue } from '../../bench/lib/chart.js';
import {
  CHARTS_BY_RESULT,
  lifecycleCharts,
  scaleCharts,
  type Charts,
  type LifecycleResult,
  type ScaleResult,
} from '../../bench/lib/bench-charts.js';

/** Every text the SVG shows, unescaped enough for comparisons. */
function texts(svg: string): string[] {
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) =>
    m[1]!.replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&#39;', "'"),
  );
}

async function render(charts: Charts): Promise<Record<string, string[]>> {
  const rendered: Record<string, string[]> = {};
  for (const [name, spec] of Object.entries(charts)) {
    const svg = await renderSvg(spec);
    assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    rendered[name] = texts(svg);
  }
  return rendered;
}

function includesAll(shown: string[], expected: string[], chart: string): void {
  for (const text of expected)
    assert.ok(shown.includes(text), `${chart}: no "${text}" in ${JSON.stringify(shown)}`);
}

describe('value labels', () => {
  it('three or so significant digits, whole numbers whole, thousands grouped', () => {
    assert.equal(formatValue(367.4), '367');
    assert.equal(formatValue(40.71), '40.7');
    assert.equal(formatValue(1.5), '1.50');
    assert.equal(formatValue(0.0131), '0.013');
    assert.equal(formatValue(16), '16');
    assert.equal(formatValue(18261), '18,261');
  });
});

describe('benchmark charts', () => {
  const spread = (median: number, iqr = 2, q?: [number, number]) =>
    q ? { median, iqr, q1: q[0], q3: q[1] } : { median, iqr };

  it('lifecycle: container and worker operations apart, warm pool where measured, steps stacked', async () => {
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
    const shown = await render(charts);
    includesAll(
      shown.lifecycle!,
      [
        'Lifecycle operations that start or remove a container',
        'DEPLOY_CREATE',
        'TERMINATE',
        'engine floor',
        'modeldock',
        'modeldock + warm pool',
        '360 ms',
        '370 ms',
        '40 ms',
        '140 ms',
        '160 ms',
        'no warm pool for this operation',
      ],
      'lifecycle',
    );
    assert.ok(shown.lifecycle!.some((t) => t.includes('first to third quartile')));
    assert.ok(!shown.lifecycle!.includes('DEPLOY_UNLOAD'), 'worker-only operations get their own chart');
    includesAll(shown['lifecycle-worker-ops']!, ['DEPLOY_UNLOAD', '1.50 ms', '4 ms'], 'lifecycle-worker-ops');
    assert.ok(
      !shown['lifecycle-worker-ops']!.includes('modeldock + warm pool'),
      'no pool series without data',
    );
    // Steps: each segment's median inside it, each bar's total at its end.
    includesAll(
      shown['lifecycle-steps']!,
      ['create', 'start', 'stop', 'remove', '180', '188', '150', '157'],
      'steps',
    );
  });

  it('lifecycle: whiskers fall back to the IQR around the median for results without quartiles', async () => {
    const charts = lifecycleCharts({
      trials: 1,
      operations: [{ operation: 'TEMP', floor: spread(500, 40), modeldock: spread(520, 100) }],
      warm_pool: {},
      steps: {},
    });
    const shown = await render(charts);
    assert.ok(shown.lifecycle!.some((t) => t.includes('centred on the median')));
    includesAll(shown.lifecycle!, ['TEMP', '500 ms', '520 ms'], 'lifecycle');
  });

  it('scale: targets drawn, and the one-after-the-other estimate is n times one alone', async () => {
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
    const shown = await render(scaleCharts(result));
    includesAll(
      shown['scale-memory']!,
      ['target 150 MB (143 MiB)', '107 MiB', '151 MiB', '50', '200'],
      'memory',
    );
    includesAll(shown['scale-reconcile']!, ['target 500 ms', '31 ms', '73 ms'], 'reconcile');
    includesAll(
      shown['scale-concurrency']!,
      [
        'wall time, all at once',
        'each operation (median)',
        'one after the other (n × one alone)',
        '1,100 ms',
        '2,400 ms',
      ],
      'concurrency',
    );
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
