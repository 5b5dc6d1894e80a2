/**
 * The console's charts (src/api/console-charts.ts), rendered as the router renders them:
 * every step an operation records has a colour no other step has, and the memory chart
 * fits the console's narrowest card (22rem = 352 px) at its own size, so its text is
 * never shrunk to unreadable.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { memorySpec, operationsSpec } from '../../src/api/console-charts.js';
import type { WorkerSample } from '../../src/api/worker-stats.js';
import { renderSvg } from '../../src/charts/vega-svg.js';

/** The steps the lifecycle records (rec.step in src/lifecycle), `create` being the pool's hand-over too. */
const STEPS = [
  'record',
  'create',
  'start',
  'wait_ready',
  'drain',
  'link',
  'load',
  'unload',
  'measure_memory',
  'infer',
  'stop',
  'remove',
];

function sample(job: string | null, kind = 'job'): WorkerSample {
  return {
    container_name: `modeldock-${job ?? 'pool-8f3a2c'}-inf-0001`,
    kind,
    job_id: job,
    server_id: job ? 'inf-0001' : null,
    state: job ? 'ready' : null,
    model: job ? 'm-131' : null,
    cpu_percent: null,
    cpu_seconds: 1,
    memory_bytes: 90 * 1048576,
    memory_limit_bytes: 1024 * 1048576,
    sampled_at: new Date(0).toISOString(),
  };
}

describe('console charts', () => {
  it('gives every step of an operation a colour of its own', async () => {
    const spec = operationsSpec([
      {
        operation_id: 'op-1',
        type: 'DEPLOY_UNLOAD',
        job_id: 'a1',
        status: 'succeeded',
        steps: STEPS.map((name) => ({ name, duration_ms: 10 })),
      },
    ]) as { encoding: { color: { scale: { domain: string[]; range: string[] } } } };
    const { domain, range } = spec.encoding.color.scale;
    assert.deepEqual([...domain].sort(), [...STEPS].sort());
    assert.equal(new Set(range).size, domain.length, `colours: ${range.join(' ')}`);
    // And the SVG's legend draws them so.
    const svg = await renderSvg(spec as never);
    for (const step of ['record', 'drain']) assert.ok(svg.includes(`>${step}<`), `legend names ${step}`);
  });

  it('draws the memory chart no wider than the narrowest card, long job names and all', async () => {
    const svg = await renderSvg(
      memorySpec([sample('a1'), sample('a-job-with-a-rather-long-name-0123456789'), sample(null, 'pool')]),
    );
    const width = Number(/<svg[^>]* width="([\d.]+)"/.exec(svg)?.[1]);
    assert.ok(width > 0 && width <= 352, `the chart is ${width} px wide`);
    assert.ok(svg.includes('>a1<'), 'a worker is labelled by its job');
  });
});
