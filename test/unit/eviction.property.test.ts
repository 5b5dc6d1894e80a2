/**
 * Eviction cannot thrash, as properties (fast-check) of src/lifecycle/eviction.ts over
 * random traffic on simulated shared workers whose models take exactly what they
 * measured:
 * - every placement keeps each worker under its limit and all of them under the budget;
 * - it never evicts a model with requests in flight, evicts the fewest least recently
 *   used models that make room, never more than half a worker's models, and a model
 *   younger than the minimum residency only when the older idle ones could not make room;
 * - a working set that fits is never evicted: once traffic keeps to models that fit
 *   together, only models outside them are evicted, however the earlier traffic left
 *   the cache.
 * PROPERTY_RUNS sets the runs (default 300); FUZZ_SEED replays a failure.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  MAX_EVICTED_SHARE,
  decidePlacement,
  roomOn,
  type EvictionSettings,
  type ResidentModel,
  type SharedWorkerView,
} from '../../src/lifecycle/eviction.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const MiB = 1024 ** 2;
const IDLE = 50 * MiB;

interface Step {
  model: number;
  /** Milliseconds since the previous request. */
  dt: number;
  /** Loaded models (by catalog index) with a request in flight at this moment. */
  busy: number[];
}

interface Scenario {
  limitsMib: number[];
  sizesMib: number[];
  budgetMib: number;
  minResidencyMs: number;
  steps: Step[];
}

const scenario = (maxWorkers: number): fc.Arbitrary<Scenario> =>
  fc
    .record({
      limitsMib: fc.array(fc.integer({ min: 200, max: 1024 }), { minLength: 1, maxLength: maxWorkers }),
      sizesMib: fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 2, maxLength: 40 }),
      budgetMib: fc.oneof(fc.constant(0), fc.integer({ min: 200, max: 3000 })),
      minResidencyMs: fc.integer({ min: 0, max: 5000 }),
    })
    .chain((base) =>
      fc.record({
        limitsMib: fc.constant(base.limitsMib),
        sizesMib: fc.constant(base.sizesMib),
        budgetMib: fc.constant(base.budgetMib),
        minResidencyMs: fc.constant(base.minResidencyMs),
        steps: fc.array(
          fc.record({
            model: fc.integer({ min: 0, max: base.sizesMib.length - 1 }),
            dt: fc.integer({ min: 0, max: 3000 }),
            busy: fc.array(fc.integer({ min: 0, max: base.sizesMib.length - 1 }), { maxLength: 3 }),
          }),
          { minLength: 1, maxLength: 200 },
        ),
      }),
    );

/** Simulated shared workers: each model takes exactly its size; idle workers take IDLE. */
class Fleet {
  readonly workers: SharedWorkerView[];
  evicted: string[] = [];

  constructor(limitsMib: number[]) {
    this.workers = limitsMib.map((mib, i) => ({
      workerId: `w${i}`,
      limitBytes: mib * MiB,
      usedBytes: IDLE,
      models: [],
    }));
  }

  find(jobId: string): ResidentModel | undefined {
    for (const w of this.workers) {
      const m = w.models.find((x) => x.jobId === jobId);
      if (m) return m;
    }
    return undefined;
  }

  setBusy(jobs: string[]): void {
    for (const w of this.workers) for (const m of w.models) m.inFlight = jobs.includes(m.jobId) ? 1 : 0;
  }

  evict(workerId: string, victims: ResidentModel[]): void {
    const worker = this.workers.find((w) => w.workerId === workerId)!;
    for (const victim of victims) {
      worker.models = worker.models.filter((m) => m !== victim);
      worker.usedBytes -= victim.bytes;
      this.evicted.push(victim.jobId);
    }
  }

  load(workerId: string, jobId: string, bytes: number, now: number): void {
    const worker = this.workers.find((w) => w.workerId === workerId)!;
    worker.models.push({ jobId, bytes, inFlight: 0, lastUsedAt: now, loadedAt: now });
    worker.usedBytes += bytes;
  }

  total(): number {
    return this.workers.reduce((sum, w) => sum + w.usedBytes, 0);
  }
}

/** Whether `worker` alone could make `need` bytes from idle models old enough to go. */
function oldIdleCover(worker: SharedWorkerView, need: number, now: number, minResidencyMs: number): boolean {
  const old = worker.models
    .filter((m) => m.inFlight === 0 && now - m.loadedAt >= minResidencyMs)
    .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
  let freed = 0;
  let count = 0;
  for (const m of old) {
    if (freed >= need) break;
    freed += m.bytes;
    count++;
  }
  return freed >= need && count <= Math.max(1, Math.floor(worker.models.length * MAX_EVICTED_SHARE));
}

/** Replays a scenario, checking every decision; returns the fleet. */
function replay(s: Scenario): Fleet {
  const fleet = new Fleet(s.limitsMib);
  const settings: EvictionSettings = { budgetBytes: s.budgetMib * MiB, minResidencyMs: s.minResidencyMs };
  let now = 1_000_000;
  for (const step of s.steps) {
    now += step.dt;
    const jobId = `job-${step.model}`;
    fleet.setBusy(step.busy.map((b) => `job-${b}`).filter((j) => j !== jobId));
    const resident = fleet.find(jobId);
    if (resident) {
      resident.lastUsedAt = now;
      continue;
    }
    const bytes = s.sizesMib[step.model]! * MiB;
    const budgetLeft = settings.budgetBytes > 0 ? settings.budgetBytes - fleet.total() : Infinity;
    const decision = decidePlacement(fleet.workers, { jobId, bytes, now }, settings);
    if (decision.kind !== 'place') continue;
    const worker = fleet.workers.find((w) => w.workerId === decision.workerId)!;
    const need = Math.max(bytes - roomOn(worker), bytes - budgetLeft);
    for (const victim of decision.evict) {
      assert.equal(victim.inFlight, 0, 'a model with a request in flight was evicted');
    }
    assert.ok(
      decision.evict.length <= Math.max(1, Math.floor(worker.models.length * MAX_EVICTED_SHARE)),
      'more than half of a worker evicted for one load',
    );
    if (decision.evict.length > 0) {
      const freed = decision.evict.reduce((sum, v) => sum + v.bytes, 0);
      const last = decision.evict[decision.evict.length - 1]!;
      assert.ok(freed >= need, 'evicted too little');
      assert.ok(freed - last.bytes < need, 'evicted more models than room needed');
      const lastUse = Math.max(...decision.evict.map((v) => v.lastUsedAt));
      const spared = worker.models.filter((m) => !decision.evict.includes(m) && m.inFlight === 0);
      if (!decision.youngEvicted) {
        for (const m of spared) {
          if (now - m.loadedAt >= s.minResidencyMs) {
            assert.ok(m.lastUsedAt >= lastUse, 'an older idle model was spared for a more recent one');
          }
        }
      } else {
        for (const w of fleet.workers) {
          const needOn = Math.max(bytes - roomOn(w), bytes - budgetLeft);
          assert.ok(
            !oldIdleCover(w, needOn, now, s.minResidencyMs),
            'a young model went while old ones could',
          );
        }
      }
    }
    fleet.evict(decision.workerId, decision.evict);
    fleet.load(decision.workerId, jobId, bytes, now);
    assert.ok(worker.usedBytes <= worker.limitBytes, 'a worker went over its limit');
    if (settings.budgetBytes > 0)
      assert.ok(fleet.total() <= settings.budgetBytes, 'the fleet went over the budget');
  }
  return fleet;
}

describe('eviction: properties', () => {
  it('every decision keeps the limits, spares busy and recent models, and evicts the fewest', () => {
    fc.assert(
      fc.property(scenario(4), (s) => void replay(s)),
      { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  });

  it('a working set that fits is never evicted, whatever came before', () => {
    const arbitrary = scenario(1).chain((s) => {
      const capacity = Math.min(s.limitsMib[0]!, s.budgetMib > 0 ? s.budgetMib : Infinity) - IDLE / MiB;
      return fc
        .subarray(
          s.sizesMib.map((_, i) => i),
          { minLength: 1 },
        )
        .filter((w) => w.reduce((sum, i) => sum + s.sizesMib[i]!, 0) <= capacity)
        .chain((working) =>
          fc.record({
            s: fc.constant(s),
            working: fc.constant(working),
            later: fc.array(
              fc.record({ model: fc.constantFrom(...working), dt: fc.integer({ min: 0, max: 3000 }) }),
              { minLength: 1, maxLength: 200 },
            ),
          }),
        );
    });
    fc.assert(
      fc.property(arbitrary, ({ s, working, later }) => {
        const noise = s.steps.filter((step) => !working.includes(step.model));
        // The working set's traffic starts once the noise is old enough to go (and idle).
        const steps: Step[] = [
          ...noise,
          ...later.map((l, i) => ({ ...l, dt: i === 0 ? l.dt + s.minResidencyMs : l.dt, busy: [] })),
        ];
        const fleet = replay({ ...s, steps });
        const evictedLater = fleet.evicted.filter((job) => working.includes(Number(job.slice(4))));
        assert.deepEqual(evictedLater, [], 'a model of the working set was evicted');
      }),
      { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
  });
});
