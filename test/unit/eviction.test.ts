/**
 * The shared workers' placement and eviction decisions (src/lifecycle/eviction.ts), as
 * pure logic: room first and spread, a new worker next, then the least recently used
 * models that are idle and old enough, the fewest that make room; refusals that say why.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FIRST_GUESS_BYTES,
  MIN_MODEL_BYTES,
  ModelSizes,
  decideDrain,
  decidePlacement,
  fleetVictims,
  headroomVictims,
  measuredOverBudget,
  type ResidentModel,
  type SharedWorkerView,
} from '../../src/lifecycle/eviction.js';

const MiB = 1024 ** 2;
const NOW = 1_000_000;
const settings = { budgetBytes: 0, minResidencyMs: 10_000 };

function model(
  jobId: string,
  mib: number,
  lastUsedAgo: number,
  extra: Partial<ResidentModel> = {},
): ResidentModel {
  return {
    jobId,
    bytes: mib * MiB,
    inFlight: 0,
    lastUsedAt: NOW - lastUsedAgo,
    loadedAt: NOW - Math.max(lastUsedAgo, 60_000),
    ...extra,
  };
}

function worker(workerId: string, limitMib: number, models: ResidentModel[], idleMib = 50): SharedWorkerView {
  const used = idleMib * MiB + models.reduce((sum, m) => sum + m.bytes, 0);
  return { workerId, limitBytes: limitMib * MiB, usedBytes: used, models };
}

const jobs = (decision: ReturnType<typeof decidePlacement>) =>
  decision.kind === 'place' ? decision.evict.map((m) => m.jobId) : decision.kind;

describe('eviction: placing a model on shared workers', () => {
  it('picks the worker with the most room, then the less busy, and evicts nothing', () => {
    const a = worker('a', 1024, [model('a1', 600, 1000)]);
    const b = worker('b', 1024, [model('b1', 100, 1000)]);
    const c = worker('c', 1024, [model('c1', 100, 1000, { inFlight: 3 })]);
    const decision = decidePlacement([a, c, b], { jobId: 'new', bytes: 100 * MiB, now: NOW }, settings);
    assert.deepEqual(decision, { kind: 'place', workerId: 'b', evict: [], youngEvicted: false });
  });

  it('opens a new worker before evicting, when it may and the budget holds it', () => {
    const full = worker('a', 512, [model('a1', 400, 1000)]);
    const ask = {
      jobId: 'new',
      bytes: 100 * MiB,
      now: NOW,
      newWorker: { limitBytes: 512 * MiB, idleBytes: 50 * MiB },
    };
    assert.equal(decidePlacement([full], ask, settings).kind, 'open');
    // A budget that cannot hold another worker's idle memory and the model: evict instead.
    const tight = { ...settings, budgetBytes: 550 * MiB };
    assert.deepEqual(jobs(decidePlacement([full], ask, tight)), ['a1']);
  });

  it('evicts the least recently used models, the fewest that make room', () => {
    const w = worker('a', 1024, [
      model('recent', 300, 1_000),
      model('oldest', 100, 50_000),
      model('older', 300, 40_000),
      model('old', 200, 30_000),
    ]);
    // Room: 1024 - 50 - 900 = 74 MiB; 300 MiB needs 226 more: oldest (100) + older (300).
    const decision = decidePlacement([w], { jobId: 'new', bytes: 300 * MiB, now: NOW }, settings);
    assert.deepEqual(jobs(decision), ['oldest', 'older']);
  });

  it('never evicts a model with requests in flight, or one still loading', () => {
    const w = worker('a', 1024, [
      model('busy', 300, 90_000, { inFlight: 1 }),
      model('loading', 300, 80_000, { loading: true }),
      model('idle', 300, 1_000),
    ]);
    const decision = decidePlacement([w], { jobId: 'new', bytes: 200 * MiB, now: NOW }, settings);
    assert.deepEqual(jobs(decision), ['idle']);
  });

  it('keeps a model loaded less than the minimum residency ago while anything older can go', () => {
    const young = model('young', 300, 20_000, { loadedAt: NOW - 2_000, lastUsedAt: NOW - 20_000 });
    const w = worker('a', 1024, [young, model('older-but-used', 300, 5_000), model('x', 300, 4_000)]);
    const decision = decidePlacement([w], { jobId: 'new', bytes: 200 * MiB, now: NOW }, settings);
    assert.deepEqual(jobs(decision), ['older-but-used'], 'the young one was used longer ago, and stays');
    assert.equal(decision.kind === 'place' && decision.youngEvicted, false);
  });

  it('evicts a young model when nothing else can go, and says so', () => {
    const young = model('young', 300, 1_000, { loadedAt: NOW - 2_000 });
    const w = worker('a', 1024, [young, model('busy', 600, 90_000, { inFlight: 2 })]);
    const decision = decidePlacement([w], { jobId: 'new', bytes: 200 * MiB, now: NOW }, settings);
    assert.deepEqual(jobs(decision), ['young']);
    assert.equal(decision.kind === 'place' && decision.youngEvicted, true);
  });

  it('prefers the worker whose victims were used least recently', () => {
    const a = worker('a', 512, [model('a1', 400, 5_000)]);
    const b = worker('b', 512, [model('b1', 400, 50_000)]);
    const decision = decidePlacement([a, b], { jobId: 'new', bytes: 200 * MiB, now: NOW }, settings);
    assert.equal(decision.kind === 'place' && decision.workerId, 'b');
    assert.deepEqual(jobs(decision), ['b1']);
  });

  it('holds every shared worker together within the budget', () => {
    // Both workers have room by their limits; the budget (1000 MiB) has 100 left.
    const a = worker('a', 1024, [model('a1', 350, 30_000)]);
    const b = worker('b', 1024, [model('b1', 400, 20_000)]);
    const tight = { ...settings, budgetBytes: 1000 * MiB };
    const decision = decidePlacement([a, b], { jobId: 'new', bytes: 300 * MiB, now: NOW }, tight);
    assert.deepEqual(jobs(decision), ['a1']);
  });

  it('a fleet over its budget evicts for the new load and as much again of the excess, never the whole excess', () => {
    // 20 models of 1 MiB, one of which measured 14 MiB more than was reserved for it (or
    // its worker's runtime grew): the fleet is 12 MiB over a budget of 100 MiB.
    const models = Array.from({ length: 20 }, (_, i) => model(`m${i}`, i === 19 ? 15 : 1, 60_000 - i));
    const w = worker('a', 1024, models, 78);
    const over = { ...settings, budgetBytes: 100 * MiB };
    const decision = decidePlacement([w], { jobId: 'new', bytes: 2 * MiB, now: NOW }, over);
    assert.deepEqual(
      jobs(decision),
      ['m0', 'm1', 'm2', 'm3'],
      'its 2 MiB and 2 MiB of the excess, not 12 MiB more',
    );
  });

  it('a fleet over its budget still places a load when giving back excess too would take too many', () => {
    // Two models: evicting for the excess as well would take both (more than half).
    const w = worker('a', 1024, [model('m0', 2, 60_000), model('m1', 2, 50_000)], 100);
    const over = { ...settings, budgetBytes: 100 * MiB };
    const decision = decidePlacement([w], { jobId: 'new', bytes: 2 * MiB, now: NOW }, over);
    assert.deepEqual(jobs(decision), ['m0']);
  });

  it('charges what the budget holds outside the shared fleet (dedicated servers, the pool)', () => {
    // Room by the worker and by the budget alone; 300 MiB of dedicated servers leave none.
    const a = worker('a', 1024, [model('a1', 300, 30_000)]);
    const budget = { ...settings, budgetBytes: 800 * MiB };
    const ask = { jobId: 'new', bytes: 200 * MiB, now: NOW };
    assert.deepEqual(jobs(decidePlacement([a], ask, budget)), []);
    assert.deepEqual(jobs(decidePlacement([a], { ...ask, outsideBytes: 300 * MiB }, budget)), ['a1']);
  });

  it('a worker at its model limit takes another only in place of its least recently used', () => {
    const w = { ...worker('a', 2048, [model('old', 1, 50_000), model('new', 1, 1_000)]), maxModels: 2 };
    const decision = decidePlacement([w], { jobId: 'x', bytes: 1 * MiB, now: NOW }, settings);
    assert.deepEqual(jobs(decision), ['old'], 'memory has room; the count has not');
  });

  it('refuses a model larger than any worker or the budget: too_large', () => {
    const w = worker('a', 512, []);
    const decision = decidePlacement([w], { jobId: 'new', bytes: 600 * MiB, now: NOW }, settings);
    assert.equal(decision.kind === 'refuse' && decision.reason, 'too_large');
    assert.match(decision.kind === 'refuse' ? decision.message : '', /place it dedicated/);
  });

  it('refuses when only busy models could make room: busy, to try again', () => {
    const w = worker('a', 512, [model('busy', 400, 90_000, { inFlight: 1 })]);
    const decision = decidePlacement([w], { jobId: 'new', bytes: 200 * MiB, now: NOW }, settings);
    assert.equal(decision.kind === 'refuse' && decision.reason, 'busy');
  });

  it("never empties a cache for one load: more than half of a worker's models is refused", () => {
    const small = Array.from({ length: 10 }, (_, i) => model(`s${i}`, 40, 60_000 - i));
    const w = worker('a', 512, small); // 450 MiB used, 62 left
    const ok = decidePlacement([w], { jobId: 'new', bytes: 150 * MiB, now: NOW }, settings);
    assert.deepEqual(jobs(ok), ['s0', 's1', 's2']);
    const storm = decidePlacement([w], { jobId: 'new', bytes: 400 * MiB, now: NOW }, settings);
    assert.equal(storm.kind === 'refuse' && storm.reason, 'would_evict_too_many');
  });
});

describe('eviction: model size estimates', () => {
  it('guesses from the file, else a constant, until a load is measured', () => {
    const sizes = new ModelSizes();
    assert.equal(sizes.estimate('m'), FIRST_GUESS_BYTES);
    assert.equal(sizes.estimate('m', 3 * MiB), 3 * MiB);
    sizes.observe('m', 5 * MiB);
    assert.equal(sizes.estimate('m', 3 * MiB), 5 * MiB, 'the measurement wins over the file');
    assert.equal(sizes.isMeasured('m'), true);
    sizes.observe('tiny', 0);
    assert.equal(sizes.estimate('tiny'), MIN_MODEL_BYTES, 'a load that measured nothing still counts');
  });
});

describe('eviction: giving memory back for a dedicated server (fleetVictims)', () => {
  const budget = { budgetBytes: 1000 * MiB, minResidencyMs: 10_000 };

  it('takes the least recently used idle models of all workers until the need is covered', () => {
    const a = worker('a', 1024, [model('a1', 100, 5_000), model('a2', 100, 40_000)]);
    const b = worker('b', 1024, [model('b1', 100, 30_000), model('b2', 100, 50_000, { inFlight: 1 })]);
    const victims = fleetVictims([a, b], 150 * MiB, NOW, budget);
    assert.deepEqual(
      victims?.map((v) => `${v.workerId}:${v.model.jobId}`),
      ['a:a2', 'b:b1'],
      'b2 is the least recently used but serving a request',
    );
  });

  it('spares young models while old ones can cover the need, and never takes more than half a worker', () => {
    const young = model('young', 100, 1_000, { loadedAt: NOW - 1_000 });
    const a = worker('a', 1024, [
      young,
      model('old1', 100, 5_000),
      model('old2', 100, 6_000),
      model('old3', 50, 7_000),
    ]);
    assert.deepEqual(
      fleetVictims([a], 150 * MiB, NOW, budget)?.map((v) => v.model.jobId),
      ['old3', 'old2'],
    );
    // Three models' worth would take more than half of the four: nothing is evicted.
    assert.equal(fleetVictims([a], 300 * MiB, NOW, budget), undefined);
    assert.deepEqual(fleetVictims([a], 0, NOW, budget), []);
  });
});

describe('eviction: ahead of need, past the high watermark (headroomVictims)', () => {
  // A budget of 1,000 MiB with 100 MiB of headroom: the high watermark is 950 MiB, the low one 900.
  const headroom = { budgetBytes: 1000 * MiB, minResidencyMs: 10_000, headroomBytes: 100 * MiB };
  const names = (victims: ReturnType<typeof headroomVictims>) =>
    victims.map((v) => `${v.workerId}:${v.model.jobId}`);

  it('evicts nothing at or below the high watermark', () => {
    // 50 MiB of runtime and 900 MiB of models: 950 MiB charged, at the high watermark.
    const a = worker('a', 2048, [model('a1', 300, 5_000), model('a2', 300, 6_000), model('a3', 300, 7_000)]);
    assert.deepEqual(headroomVictims([a], headroom, NOW), []);
    // Without a budget, or without headroom, never.
    const over = worker('b', 2048, [model('b1', 600, 5_000), model('b2', 600, 6_000)]);
    assert.deepEqual(headroomVictims([over], { ...headroom, budgetBytes: 0 }, NOW), []);
    assert.deepEqual(headroomVictims([over], { ...headroom, headroomBytes: 0 }, NOW), []);
  });

  it('past the high watermark, evicts the least recently used idle models down to the low one', () => {
    // 2 × 50 MiB of runtimes and 880 MiB of models: 980 MiB, 80 over the low watermark.
    const a = worker('a', 2048, [
      model('a1', 300, 5_000),
      model('a2', 40, 60_000),
      model('a3', 40, 50_000),
      model('a4', 10, 1_000),
    ]);
    const b = worker('b', 2048, [model('b1', 300, 2_000), model('b2', 150, 40_000), model('b3', 40, 3_000)]);
    assert.deepEqual(names(headroomVictims([a, b], headroom, NOW)), ['a:a2', 'a:a3']);
    // What the budget charges outside the fleet counts too: 20 MiB more is one more model.
    assert.deepEqual(names(headroomVictims([a, b], headroom, NOW, 20 * MiB)), ['a:a2', 'a:a3', 'b:b2']);
  });

  it('counts the loads under way, and never evicts a model in flight, loading, or younger than the minimum residency', () => {
    const young = model('young', 40, 60_000, { loadedAt: NOW - 1_000 });
    const busy = model('busy', 40, 59_000, { inFlight: 2 });
    const loading = model('loading', 40, 58_000, { loading: true });
    const a = worker('a', 2048, [young, busy, loading, model('old', 40, 10_000), model('a5', 300, 1_000)]);
    const b = worker('b', 2048, [model('b1', 300, 2_000), model('b2', 100, 500)]);
    // 100 MiB of runtimes, 860 MiB of models: 960 MiB; with 20 MiB reserved for a load,
    // 980, 80 over the low watermark. The young, busy and loading models were used longest ago.
    a.reservedBytes = 20 * MiB;
    assert.deepEqual(names(headroomVictims([a, b], headroom, NOW)), ['a:old', 'b:b1']);
  });

  it("takes no more than half of one worker's models, and as many as the rules allow when they cannot cover it all", () => {
    const a = worker('a', 2048, [
      model('a1', 300, 50_000),
      model('a2', 300, 40_000),
      model('a3', 300, 30_000),
      model('a4', 40, 1_000, { inFlight: 1 }),
    ]);
    // 990 MiB charged: 90 over the low watermark; two of a's four models at most.
    assert.deepEqual(names(headroomVictims([a], headroom, NOW)), ['a:a1']);
    const small = worker('s', 2048, [
      model('s1', 10, 50_000),
      model('s2', 10, 40_000),
      model('s3', 10, 30_000),
      model('s4', 900, 1_000, { inFlight: 1 }),
    ]);
    // 980 MiB charged, 80 over: the two least recently used of its four, 20 MiB, are all it may give.
    assert.deepEqual(names(headroomVictims([small], headroom, NOW)), ['s:s1', 's:s2']);
  });
});

describe('eviction: shrinking a fleet that measures over its budget (decideDrain)', () => {
  const budget = { ...settings, budgetBytes: 200 * MiB };
  /** A worker of `count` idle 1 MiB models (used and loaded long ago) beside `runtimeMib` of runtime. */
  function grownWorker(id: string, count: number, runtimeMib: number): SharedWorkerView {
    const models = Array.from({ length: count }, (_, i) => model(`${id}${i}`, 1, 60_000 - i));
    return worker(id, 1024, models, runtimeMib);
  }

  it('does nothing within the budget, without one, or with one worker left', () => {
    const a = grownWorker('a', 3, 60);
    const b = grownWorker('b', 2, 60);
    // 125 MiB measured against 200.
    assert.deepEqual(decideDrain([a, b], budget, NOW), { kind: 'none' });
    assert.deepEqual(decideDrain([grownWorker('a', 3, 150), b], settings, NOW), { kind: 'none' });
    // One worker measuring 300 MiB alone: never below one.
    assert.deepEqual(decideDrain([grownWorker('a', 3, 297)], budget, NOW), { kind: 'none' });
  });

  it('counts what the workers measure, not what their models were charged, and the charge outside the fleet', () => {
    // Charged 40 MiB each (a runtime at its least measure beside its models), measuring 110.
    const a = { ...grownWorker('a', 3, 107), accountedBytes: 40 * MiB };
    const b = { ...grownWorker('b', 2, 108), accountedBytes: 40 * MiB };
    assert.equal(measuredOverBudget([a, b], budget), true);
    const within = { ...grownWorker('b', 2, 58), accountedBytes: 40 * MiB };
    assert.equal(measuredOverBudget([a, within], budget), false);
    assert.equal(measuredOverBudget([a, within], budget, 50 * MiB), true, 'dedicated servers count too');
  });

  it('drains the worker hosting the fewest models, then the one measuring most, evicting its idle old models only', () => {
    const a = grownWorker('a', 4, 100);
    const b = grownWorker('b', 2, 100);
    const c = grownWorker('c', 2, 110);
    const drain = decideDrain([a, b, c], budget, NOW);
    assert.equal(drain.kind, 'drain');
    assert.equal(drain.kind === 'drain' && drain.workerId, 'c', 'two models, and it measures more than b');
    assert.deepEqual(drain.kind === 'drain' && drain.evict.map((m) => m.jobId), ['c0', 'c1']);

    const busy = worker('d', 1024, [
      model('idle', 1, 50_000),
      model('serving', 1, 40_000, { inFlight: 1 }),
      model('loading', 1, 30_000, { loading: true }),
      model('young', 1, 20_000, { loadedAt: NOW - 1_000 }),
    ]);
    const next = decideDrain([a, busy], budget, NOW, 100 * MiB, 'd');
    assert.deepEqual(
      next.kind === 'drain' && next.evict.map((m) => m.jobId),
      ['idle'],
      'never one in flight, loading or younger than the minimum residency: they stay for a later pass',
    );
  });

  it('keeps draining the same worker until it hosts nothing, then closes it', () => {
    const a = grownWorker('a', 1, 150);
    const b = grownWorker('b', 3, 100);
    // a hosts fewer models now, but b is the one being drained.
    const drain = decideDrain([a, b], budget, NOW, 0, 'b');
    assert.equal(drain.kind === 'drain' && drain.workerId, 'b');
    const emptied = worker('b', 1024, [], 100);
    assert.deepEqual(decideDrain([a, emptied], budget, NOW, 0, 'b'), { kind: 'close', workerId: 'b' });
    // A load under way on it (placed before the drain began) is waited for.
    const loading = { ...emptied, reservedBytes: 1 * MiB, modelCount: 0 };
    assert.equal(decideDrain([a, loading], budget, NOW, 0, 'b').kind, 'drain');
  });

  it('stops draining once the fleet measures within the budget again, or it is the last worker', () => {
    const a = grownWorker('a', 3, 60);
    const b = grownWorker('b', 2, 60);
    assert.deepEqual(decideDrain([a, b], budget, NOW, 0, 'b'), { kind: 'stop', workerId: 'b' });
    assert.deepEqual(decideDrain([grownWorker('b', 2, 300)], budget, NOW, 0, 'b'), {
      kind: 'stop',
      workerId: 'b',
    });
  });

  it('a worker being drained takes no load and gives no room, but counts against the budget', () => {
    const draining = { ...worker('a', 1024, [model('a1', 10, 60_000)], 50), placeable: false };
    const other = worker('b', 1024, [model('b1', 10, 60_000)], 50);
    const ask = {
      jobId: 'new',
      bytes: 5 * MiB,
      now: NOW,
      newWorker: { limitBytes: 1024 * MiB, idleBytes: 50 * MiB },
    };
    // Room on both by their limits and the budget: only b takes it.
    const roomy = { ...settings, budgetBytes: 1000 * MiB };
    assert.deepEqual(decidePlacement([draining, other], ask, roomy), {
      kind: 'place',
      workerId: 'b',
      evict: [],
      youngEvicted: false,
    });
    // A budget spent by both: no new worker (a counts), and room is made on b, not a.
    const spent = { ...settings, budgetBytes: 122 * MiB };
    assert.deepEqual(jobs(decidePlacement([draining, other], ask, spent)), ['b1']);
  });
});
