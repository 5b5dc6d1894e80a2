/**
 * The autoscaler's decisions (pure logic): the replicas a concurrency wants, and when
 * the desired count may move — up only after the whole up delay wanted more, down only
 * after the whole down delay wanted fewer, never back and forth on a noisy signal.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { Autoscaler, decideReplicas, wantedReplicas } from '../../src/lifecycle/autoscaler.js';
import { EventBus } from '../../src/lifecycle/event-bus.js';
import { RouteEntry, RouteTable } from '../../src/lifecycle/route-table.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { JobRecord, OperationRecord } from '../../src/store/records.js';
import type { Store } from '../../src/store/store.js';

const options = { upDelayMs: 1_000, downDelayMs: 5_000, intervalMs: 250 };

/** Samples every 250 ms ending at `now`, wanting `wanted(i)` replicas. */
function samples(count: number, now: number, wanted: (i: number) => number) {
  return Array.from({ length: count }, (_, i) => ({ at: now - (count - 1 - i) * 250, wanted: wanted(i) }));
}

describe('autoscaler', () => {
  it('wants ceil(concurrency / target) replicas within min..max', () => {
    assert.equal(wantedReplicas(0, 4, { min: 1, max: 3 }), 1);
    assert.equal(wantedReplicas(0, 4, { min: 0, max: 3 }), 0, 'idle with min 0: zero');
    assert.equal(wantedReplicas(0.2, 4, { min: 0, max: 3 }), 1, 'any demand needs a replica');
    assert.equal(wantedReplicas(4, 4, { min: 1, max: 3 }), 1);
    assert.equal(wantedReplicas(4.5, 4, { min: 1, max: 3 }), 2);
    assert.equal(wantedReplicas(100, 4, { min: 1, max: 3 }), 3, 'never past max');
  });

  it('scales up once every sample of the up delay wanted more, to the least of them', () => {
    const now = 100_000;
    assert.equal(
      decideReplicas(
        samples(5, now, () => 3),
        1,
        now,
        options,
      ),
      3,
    );
    assert.equal(
      decideReplicas(
        samples(5, now, (i) => (i === 0 ? 2 : 3)),
        1,
        now,
        options,
      ),
      2,
      'the least the window wanted',
    );
    assert.equal(
      decideReplicas(
        samples(5, now, (i) => (i === 2 ? 1 : 3)),
        1,
        now,
        options,
      ),
      undefined,
      'one sample that did not want more: no change',
    );
    assert.equal(
      decideReplicas(
        samples(2, now, () => 3),
        1,
        now,
        options,
      ),
      undefined,
      'history shorter than the up delay: wait',
    );
  });

  it('scales down only after the whole down delay wanted fewer, to the most of them', () => {
    const now = 100_000;
    assert.equal(
      decideReplicas(
        samples(21, now, () => 1),
        3,
        now,
        options,
      ),
      1,
    );
    assert.equal(
      decideReplicas(
        samples(21, now, (i) => (i === 3 ? 2 : 1)),
        3,
        now,
        options,
      ),
      2,
    );
    assert.equal(
      decideReplicas(
        samples(10, now, () => 1),
        3,
        now,
        options,
      ),
      undefined,
      'low for less than the down delay: keep',
    );
    assert.equal(
      decideReplicas(
        samples(21, now, (i) => (i === 20 ? 3 : 1)),
        3,
        now,
        options,
      ),
      undefined,
      'demand back at the current count: keep',
    );
    assert.equal(
      decideReplicas(
        samples(21, now, () => 0),
        1,
        now,
        options,
      ),
      0,
      'scale to zero',
    );
  });

  it('never flaps on a signal that alternates around the current count', () => {
    const now = 100_000;
    const noisy = samples(21, now, (i) => (i % 2 === 0 ? 3 : 1));
    assert.equal(decideReplicas(noisy, 2, now, options), undefined);
  });

  it('with no delay, follows the latest sample at once', () => {
    const now = 100_000;
    const none = { upDelayMs: 0, downDelayMs: 0, intervalMs: 250 };
    assert.equal(decideReplicas([{ at: now, wanted: 3 }], 1, now, none), 3);
    assert.equal(decideReplicas([{ at: now, wanted: 1 }], 3, now, none), 1);
    assert.equal(decideReplicas([], 1, now, none), undefined);
  });
});

describe('autoscaler: what a sample reads', () => {
  it("reads a serving job's record once, and again only after an operation of the job ended", async () => {
    const reads: string[] = [];
    const job = { jobId: 'a', desiredReplicas: 1, replicas: { min: 1, max: 1 } } as JobRecord;
    const store = {
      getJob: async (jobId: string) => {
        reads.push(jobId);
        return job;
      },
    } as unknown as Store;
    const routes = new RouteTable();
    routes.set(new RouteEntry('a', 'inf-0001', 'http://127.0.0.1:1', 'a'));
    const events = new EventBus();
    const autoscaler = new Autoscaler({
      store,
      events,
      routes,
      metrics: new Metrics({ defaultMetrics: false }),
      logger: pino({ level: 'silent' }),
      options: { target: 4, upDelayMs: 1_000, downDelayMs: 30_000, intervalMs: 60_000 },
      actions: { addReplica: async () => undefined, removeReplica: async () => undefined, waiting: () => 0 },
    });
    autoscaler.start();
    try {
      for (let i = 0; i < 20; i++) await autoscaler.tick(100_000 + i * 250);
      assert.deepEqual(reads, ['a'], 'twenty samples, one read');
      const operation = (status: string) =>
        ({ type: 'operation', operation: { jobId: 'a', status } as OperationRecord }) as const;
      events.publish(operation('running'));
      await autoscaler.tick(110_000);
      assert.deepEqual(reads, ['a'], 'an operation under way changes nothing yet');
      events.publish(operation('succeeded'));
      await autoscaler.tick(110_250);
      await autoscaler.tick(110_500);
      assert.deepEqual(reads, ['a', 'a'], 'read again once, after the operation ended');
    } finally {
      autoscaler.stop();
    }
  });
});

describe('autoscaler: which jobs it samples', () => {
  it('leaves a job of fixed bounds that has its replicas alone, and still reports its counts', async () => {
    const jobs: Record<string, JobRecord> = {
      fixed: {
        jobId: 'fixed',
        desiredReplicas: 1,
        replicas: { min: 1, max: 1 },
        scaleTarget: null,
      } as JobRecord,
      scaling: {
        jobId: 'scaling',
        desiredReplicas: 1,
        replicas: { min: 1, max: 3 },
        scaleTarget: null,
      } as JobRecord,
      short: {
        jobId: 'short',
        desiredReplicas: 1,
        replicas: { min: 1, max: 1 },
        scaleTarget: null,
      } as JobRecord,
    };
    const updates: string[] = [];
    const store = {
      getJob: async (jobId: string) => jobs[jobId],
      updateJob: async (jobId: string, patch: Partial<JobRecord>) => {
        updates.push(`${jobId}→${patch.desiredReplicas}`);
        return (jobs[jobId] = { ...jobs[jobId]!, ...patch });
      },
    } as unknown as Store;
    const routes = new RouteTable();
    const busy = new RouteEntry('fixed', 'inf-0001', 'http://127.0.0.1:1', 'fixed');
    routes.set(busy);
    routes.set(new RouteEntry('scaling', 'inf-0002', 'http://127.0.0.1:2', 'scaling'));
    // A fixed job with a replica more than it wants (one being re-placed): still looked at.
    routes.set(new RouteEntry('short', 'inf-0003', 'http://127.0.0.1:3', 'short'));
    routes.set(new RouteEntry('short', 'inf-0004', 'http://127.0.0.1:4', 'short'));
    const sampled: string[] = [];
    const metrics = new Metrics({ defaultMetrics: false });
    const autoscaler = new Autoscaler({
      store,
      events: new EventBus(),
      routes,
      metrics,
      logger: pino({ level: 'silent' }),
      options: { target: 1, upDelayMs: 0, downDelayMs: 30_000, intervalMs: 60_000 },
      actions: {
        addReplica: async () => undefined,
        removeReplica: async () => undefined,
        waiting: (jobId) => {
          sampled.push(jobId);
          return jobId === 'fixed' || jobId === 'scaling' ? 5 : 0;
        },
      },
    });
    for (let i = 0; i < 4; i++) await autoscaler.tick(100_000 + i * 250);
    assert.deepEqual(
      updates,
      ['scaling→3'],
      'the scalable job scaled on its demand; the fixed one did not move',
    );
    assert.equal(sampled.includes('fixed'), false, 'the fixed job that has its replica is not sampled');
    assert.ok(sampled.includes('scaling') && sampled.includes('short'));
    const values = (await metrics.replicas.get()).values;
    const of = (job: string, kind: string) =>
      values.find((v) => v.labels.job === job && v.labels.kind === kind)?.value;
    assert.equal(of('fixed', 'desired'), 1);
    assert.equal(of('fixed', 'ready'), 1);
    assert.equal(of('short', 'ready'), 2);
    routes.set(new RouteEntry('fixed', 'inf-0005', 'http://127.0.0.1:5', 'fixed'));
    await autoscaler.tick(101_000);
    const after = (await metrics.replicas.get()).values;
    assert.equal(
      after.find((v) => v.labels.job === 'fixed' && v.labels.kind === 'ready')?.value,
      2,
      'a change is reported',
    );
    // A job that stops serving (unloaded, evicted, terminated) leaves the gauge: at 10,000
    // shared jobs every job once routed would otherwise keep two series, its last counts
    // claiming replicas ready that are gone.
    routes.withdraw('fixed');
    await autoscaler.tick(101_250);
    const gone = (await metrics.replicas.get()).values;
    assert.equal(
      gone.some((v) => v.labels.job === 'fixed'),
      false,
      'a job without a route has no replica series',
    );
    assert.ok(
      gone.some((v) => v.labels.job === 'short'),
      'the others stay',
    );
    routes.set(new RouteEntry('fixed', 'inf-0006', 'http://127.0.0.1:6', 'fixed'));
    await autoscaler.tick(101_500);
    assert.equal(
      (await metrics.replicas.get()).values.find((v) => v.labels.job === 'fixed' && v.labels.kind === 'ready')
        ?.value,
      1,
      'served again, reported again',
    );
  });
});
