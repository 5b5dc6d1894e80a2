import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SharedMemory, type Activity, type HostedServer } from '../../src/lifecycle/shared-memory.js';
import type { ServerRecord } from '../../src/store/records.js';
import { serverInput } from '../contract/store.contract.js';

const MiB = 1024 ** 2;
const LONG_AGO = '2026-01-01T00:00:00.000Z';

/** A ready shared server of job `jobId` on worker w1, loaded and last used long ago. */
function hosted(number: number, jobId: string): HostedServer {
  const server: ServerRecord = {
    ...serverInput(number, { jobId, placement: 'shared', workerName: 'w1', state: 'ready' }),
    loadedAt: LONG_AGO,
    lastUsedAt: LONG_AGO,
    version: 2,
    createdAt: LONG_AGO,
    updatedAt: LONG_AGO,
  };
  return { served: jobId, server };
}

const idle: Activity = { inFlight: () => 0, lastUsedAt: (s) => Date.parse(s.lastUsedAt!) + s.number };

// One worker: 50 MiB of runtime at first and one 10 MiB model.
function grown(budgetMiB: number, limitMiB = 1024) {
  const memory = new SharedMemory({
    budgetBytes: budgetMiB * MiB,
    minResidencyMs: 0,
    workerLimitBytes: limitMiB * MiB,
  });
  memory.observeStats('w1', {
    rss_bytes: 60 * MiB,
    memory_bytes: 60 * MiB,
    memory_limit_bytes: limitMiB * MiB,
    model_memory_bytes: { a: 10 * MiB },
  });
  memory.sizes.observe('m-131', 20 * MiB);
  // After thousands of loads and unloads the worker measures 330 MiB with two models
  // of 10 MiB: its runtime grew by 260 MiB, which no eviction of a model gives back.
  memory.observeLoad('w1', 'b', 'm-b', {
    loadMs: 1,
    memoryBytes: 10 * MiB,
    workerMemoryBytes: 330 * MiB,
    workerMemoryLimitBytes: limitMiB * MiB,
  });
  return memory;
}

describe('shared memory: models being evicted (shared-memory.ts)', () => {
  // One worker with a 250 MiB limit: 100 MiB of runtime and two 50 MiB models, under a
  // budget of 200 MiB (spent), asked for a model estimated at 25 MiB (a 50 MiB load peak).
  function setUp() {
    const memory = new SharedMemory({
      budgetBytes: 200 * MiB,
      minResidencyMs: 0,
      workerLimitBytes: 250 * MiB,
    });
    memory.observeStats('w1', {
      rss_bytes: 200 * MiB,
      memory_bytes: 200 * MiB,
      memory_limit_bytes: 250 * MiB,
      model_memory_bytes: { a: 50 * MiB, b: 50 * MiB },
    });
    memory.sizes.observe('m-131', 25 * MiB);
    let servers = [hosted(1, 'a'), hosted(2, 'b')];
    /** a is no longer hosted: its record says unloaded. */
    const unloaded = () => (servers = servers.filter((h) => h.served !== 'a'));
    const decide = () =>
      memory.decide(
        [{ name: 'w1', hosted: servers }],
        { served: 'c', model: 'm-131', now: Date.now(), mayOpen: false },
        idle,
      ).decision;
    return { memory, decide, unloaded };
  }

  it('counts what an eviction under way gives back, so the next placement does not evict for it again', () => {
    const { memory, decide } = setUp();
    const first = decide();
    assert.equal(first.kind, 'place');
    assert.deepEqual(first.kind === 'place' && first.evict.map((m) => m.jobId), ['a']);
    memory.markLeaving('w1', ['a']);
    // a is on its way out: room for c without evicting b as well.
    assert.deepEqual(decide(), { kind: 'place', workerId: 'w1', evict: [], youngEvicted: false });
  });

  it("takes the unload's measurement in its place once it answers", () => {
    const { memory, decide, unloaded } = setUp();
    memory.markLeaving('w1', ['a']);
    // The worker measured more than the guess left it: its runtime grew meanwhile, and
    // only 10 MiB of its limit is left, so b must go too.
    memory.observeUnload('w1', 'a', 240 * MiB);
    unloaded();
    const after = decide();
    assert.equal(after.kind, 'place');
    assert.deepEqual(after.kind === 'place' && after.evict.map((m) => m.jobId), ['b']);
  });

  it('lets a load go beside its victims only when the worker holds it with them (evictions for the budget alone)', () => {
    const { memory } = setUp();
    const servers = [hosted(1, 'a'), hosted(2, 'b')];
    // 200 MiB measured of a 250 MiB limit: a 50 MiB peak fits beside a and b (the budget
    // alone made a go), a 60 MiB one does not until a's unload answers.
    memory.markLeaving('w1', ['a']);
    assert.equal(memory.fitsBeside('w1', servers, 50 * MiB, idle), true);
    assert.equal(memory.fitsBeside('w1', servers, 60 * MiB, idle), false);
    memory.observeUnload('w1', 'a', 150 * MiB);
    assert.equal(memory.fitsBeside('w1', [hosted(2, 'b')], 60 * MiB, idle), true);
  });

  it('counts the models again when the eviction ended without unloading them', () => {
    const { memory, decide } = setUp();
    const release = memory.markLeaving('w1', ['a']);
    release();
    const again = decide();
    assert.deepEqual(again.kind === 'place' && again.evict.map((m) => m.jobId), ['a']);
  });

  it('counts a model whose load measured nothing at the least a model counts, so evicting one makes room', () => {
    const memory = new SharedMemory({
      budgetBytes: 100 * MiB,
      minResidencyMs: 0,
      workerLimitBytes: 250 * MiB,
    });
    // An allocator reusing freed memory: 20 small models whose loads measured 0 bytes.
    const names = Array.from({ length: 20 }, (_, i) => `z${i}`);
    memory.observeStats('w1', {
      rss_bytes: 100 * MiB,
      memory_bytes: 100 * MiB,
      memory_limit_bytes: 250 * MiB,
      model_memory_bytes: Object.fromEntries(names.map((n) => [n, 0])),
    });
    memory.sizes.observe('m-131', 0);
    const servers = names.map((n, i) => hosted(i + 1, n));
    const { decision } = memory.decide(
      [{ name: 'w1', hosted: servers }],
      { served: 'new', model: 'm-131', now: Date.now(), mayOpen: false },
      idle,
    );
    assert.equal(decision.kind, 'place');
    assert.deepEqual(decision.kind === 'place' && decision.evict.map((m) => m.jobId), ['z0', 'z1']);
  });
});

describe("shared memory: a runtime's growth is held against the worker's limit, not charged to the budget (shared-memory.ts)", () => {
  const ask = { served: 'c', model: 'm-131', now: Date.now(), mayOpen: true };
  const servers = [hosted(1, 'a'), hosted(2, 'b')];

  it('charges the runtime at its least measure plus its models: the load is placed beside them', () => {
    const memory = grown(360);
    // 70 MiB charged (50 + 10 + 10), 290 left: the load (40 MiB at its peak) fits.
    const { decision } = memory.decide([{ name: 'w1', hosted: servers }], ask, idle);
    assert.deepEqual(decision, { kind: 'place', workerId: 'w1', evict: [], youngEvicted: false });
    assert.equal(memory.totalBytes(), 70 * MiB);
  });

  it('a fleet whose runtime grew past the budget still replaces one model for one, never refusing or emptying the cache', () => {
    // The density run's collapse: charged at its 330 MiB measure, a budget of 100 MiB
    // was "over" by 230 MiB, every load evicted twice what it took until nothing was left
    // and loads were refused. Charged 70 MiB, the load (40 MiB) evicts one model of 10.
    const memory = grown(100);
    const { decision } = memory.decide([{ name: 'w1', hosted: servers }], ask, idle);
    assert.equal(decision.kind, 'place');
    assert.deepEqual(decision.kind === 'place' && decision.evict.map((m) => m.jobId), ['a']);
  });

  it('holds a grown worker to its limit by what it measures: a load that does not fit opens another', () => {
    // 330 MiB measured of a 360 MiB limit: 30 MiB of room, the load needs 40.
    const memory = grown(1000, 360);
    const { decision } = memory.decide([{ name: 'w1', hosted: servers }], ask, idle);
    assert.equal(decision.kind, 'open');
  });

  it("re-measures between loads against the limit too (the fleet's idle pass)", () => {
    // A budget that holds the 1,000 MiB measured and another worker like it beside it
    // (a new worker is costed at what the fleet's workers measure beside their models).
    const memory = grown(2100, 1024);
    memory.observeUsage('w1', {
      rss_bytes: 1000 * MiB,
      memory_bytes: 1000 * MiB,
      memory_limit_bytes: 1024 * MiB,
    });
    const { decision } = memory.decide([{ name: 'w1', hosted: servers }], ask, idle);
    assert.equal(decision.kind, 'open', '24 MiB left by the limit for a 40 MiB load');
    assert.equal(memory.totalBytes(), 70 * MiB, 'the budget still charges 70 MiB');
  });
});

describe('shared memory: loads under way reserved at what they were placed with (shared-memory.ts)', () => {
  // The density bench's small run: a budget of 120 MiB (what 100 live jobs measured), one
  // worker just opened (33 MiB, no model yet), every job a model of its own never loaded
  // before, its ONNX file 10 KB: each load is placed at its file size (the least a model
  // counts, twice for its peak), and must stay reserved at that while it loads.
  const FILE_BYTES = 10_088;
  const opened = () => {
    const memory = new SharedMemory({
      budgetBytes: 120 * MiB,
      minResidencyMs: 1_000,
      workerLimitBytes: 2048 * MiB,
    });
    memory.observeStats('w1', {
      rss_bytes: 33 * MiB,
      memory_bytes: 33 * MiB,
      memory_limit_bytes: 2048 * MiB,
    });
    return memory;
  };
  /** A server of job `jobId` (model d-<jobId>) placed on w1 whose load has not answered yet. */
  function loading(number: number, jobId: string): HostedServer {
    const now = new Date().toISOString();
    const server: ServerRecord = {
      ...serverInput(number, {
        jobId,
        model: `d-${jobId}`,
        placement: 'shared',
        workerName: 'w1',
        state: 'loading',
      }),
      version: 2,
      createdAt: now,
      updatedAt: now,
    };
    return { served: jobId, server };
  }
  const busy: Activity = { inFlight: () => 1, lastUsedAt: () => Date.now() };

  it('places eight first loads at once on a budget that is mostly free, evicting nothing', () => {
    const memory = opened();
    const servers: HostedServer[] = [];
    for (let i = 1; i <= 9; i++) {
      const { decision, bytes } = memory.decide(
        [{ name: 'w1', hosted: servers }],
        { served: `j${i}`, model: `d-j${i}`, fileBytes: FILE_BYTES, now: Date.now(), mayOpen: true },
        busy,
      );
      assert.deepEqual(decision, { kind: 'place', workerId: 'w1', evict: [], youngEvicted: false }, `j${i}`);
      assert.ok(bytes < 1 * MiB, `j${i} is placed at its file size, not a first guess: ${bytes}`);
      servers.push(loading(i, `j${i}`));
    }
  });
});

describe('shared memory: evicting ahead of need (shared-memory.ts)', () => {
  // One worker: 100 MiB of runtime and four 25 MiB models, 200 MiB charged, under a budget
  // of 220 MiB with 40 MiB of headroom: the high watermark is 200 MiB, the low one 180.
  function setUp(headroomBytes = 40 * MiB) {
    const memory = new SharedMemory({
      budgetBytes: 220 * MiB,
      minResidencyMs: 0,
      workerLimitBytes: 1024 * MiB,
      headroomBytes,
    });
    memory.observeStats('w1', {
      rss_bytes: 200 * MiB,
      memory_bytes: 200 * MiB,
      memory_limit_bytes: 1024 * MiB,
      model_memory_bytes: { a: 25 * MiB, b: 25 * MiB, c: 25 * MiB, d: 25 * MiB },
    });
    const servers = [hosted(1, 'a'), hosted(2, 'b'), hosted(3, 'c'), hosted(4, 'd')];
    return { memory, workers: [{ name: 'w1', hosted: servers }] };
  }

  it('looks past the high watermark only, counting what the budget charges outside the fleet and not what is leaving', () => {
    const { memory } = setUp();
    assert.equal(memory.maybeOverHighWatermark(0), false, 'at the high watermark');
    assert.equal(memory.maybeOverHighWatermark(1 * MiB), true);
    memory.markLeaving('w1', ['a']);
    assert.equal(memory.maybeOverHighWatermark(1 * MiB), false, 'a is on its way out');
    assert.equal(setUp(0).memory.maybeOverHighWatermark(100 * MiB), false, 'no headroom: never');
  });

  it('chooses the least recently used models down to the low watermark, with their servers', () => {
    const { memory, workers } = setUp();
    // 10 MiB charged outside: 210 MiB, 30 over the low watermark: two models of 25 MiB.
    const victims = memory.headroomVictims(workers, Date.now(), idle, 10 * MiB);
    assert.deepEqual(
      victims.map((v) => [v.worker, v.served, v.server.serverId, v.bytes / MiB]),
      [
        ['w1', 'a', workers[0]!.hosted[0]!.server.serverId, 25],
        ['w1', 'b', workers[0]!.hosted[1]!.server.serverId, 25],
      ],
    );
    assert.deepEqual(memory.headroomVictims(workers, Date.now(), idle, 0), [], 'below the high watermark');
  });
});

describe('shared memory: a fleet measuring over its budget drains a worker (shared-memory.ts)', () => {
  it('drains by what the workers measure (and the charge outside the fleet), not their charge, naming the servers to evict', () => {
    // grown(): w1 charged 70 MiB, measuring 330. w2 measures what it is charged: 60 MiB.
    const memory = grown(350);
    memory.observeStats('w2', {
      rss_bytes: 60 * MiB,
      memory_bytes: 60 * MiB,
      memory_limit_bytes: 1024 * MiB,
      model_memory_bytes: { d: 10 * MiB },
    });
    const d = hosted(4, 'd');
    const workers = [
      { name: 'w1', hosted: [hosted(1, 'a'), hosted(2, 'b')] },
      { name: 'w2', hosted: [{ ...d, server: { ...d.server, workerName: 'w2' } }] },
    ];
    assert.equal(memory.totalBytes(), 130 * MiB, 'charged well within the budget');
    assert.equal(memory.measuredBytes(), 390 * MiB);
    // 390 MiB measured against 350: w2 hosts the fewest models.
    const { decision, victims } = memory.drainDecision(workers, Date.now(), idle, 0, undefined);
    assert.equal(decision.kind, 'drain');
    assert.deepEqual(
      victims.map((v) => [v.worker, v.served, v.server.serverId]),
      [['w2', 'd', workers[1]!.hosted[0]!.server.serverId]],
    );
    // Unloaded: w2 hosts nothing, and is closed.
    memory.observeUnload('w2', 'd', 50 * MiB);
    const emptied = [workers[0]!, { name: 'w2', hosted: [] }];
    assert.deepEqual(memory.drainDecision(emptied, Date.now(), idle, 0, 'w2').decision, {
      kind: 'close',
      workerId: 'w2',
    });
    // A budget that holds what they measure: nothing to drain.
    const roomy = grown(400);
    roomy.observeStats('w2', { rss_bytes: 60 * MiB, memory_bytes: 60 * MiB, memory_limit_bytes: 1024 * MiB });
    assert.deepEqual(roomy.drainDecision(workers, Date.now(), idle, 0, undefined).decision, { kind: 'none' });
    // ... unless what the budget charges outside the fleet (dedicated servers) fills it.
    assert.equal(roomy.drainDecision(workers, Date.now(), idle, 20 * MiB, undefined).decision.kind, 'drain');
  });
});

describe('shared memory: the fleet held to what its workers measure (shared-memory.ts, eviction.ts)', () => {
  it("charges a load that reused freed memory the model's footprint from a load that took fresh memory", () => {
    const memory = new SharedMemory({
      budgetBytes: 1024 * MiB,
      minResidencyMs: 0,
      workerLimitBytes: 1024 * MiB,
    });
    memory.observeStats('w1', {
      rss_bytes: 50 * MiB,
      memory_bytes: 50 * MiB,
      memory_limit_bytes: 1024 * MiB,
    });
    const load = (memoryBytes: number) => ({
      loadMs: 1,
      memoryBytes,
      workerMemoryBytes: 58 * MiB,
      workerMemoryLimitBytes: 1024 * MiB,
    });
    memory.observeLoad('w1', 'a', 'm-x', load(8 * MiB));
    // Unloaded, its memory stays with the worker's allocator; loaded again it reuses it.
    memory.observeUnload('w1', 'a', 58 * MiB);
    memory.observeLoad('w1', 'a', 'm-x', load(0));
    assert.equal(memory.totalBytes(), 58 * MiB, 'runtime 50 MiB and the model 8, not the 64 KiB floor');
    assert.equal(memory.sizes.estimate('m-x'), 8 * MiB);
  });

  // grown(): one worker charged 70 MiB (50 of runtime, two models of 10) measuring 330 MiB
  // (memory its earlier models freed, which its next loads reuse), here at its bound of two models.
  const ask = { served: 'c', model: 'm-131', now: Date.now(), mayOpen: true };
  const atBound = [{ name: 'w1', hosted: [hosted(1, 'a'), hosted(2, 'b')], maxModels: 2 }];
  /** A second worker's stats: `mib` measured, with these models. */
  const measureW2 = (memory: SharedMemory, mib: number, models: Record<string, number>) =>
    memory.observeStats('w2', {
      rss_bytes: mib * MiB,
      memory_bytes: mib * MiB,
      memory_limit_bytes: 1024 * MiB,
      model_memory_bytes: models,
    });
  const onW2 = (number: number, jobId: string): HostedServer => {
    const one = hosted(number, jobId);
    return { ...one, server: { ...one.server, workerName: 'w2' } };
  };

  it("opens no worker when what the workers measure fills the budget: the load takes the least recently used model's place", () => {
    // Charged 70 MiB, the budget of 400 would hold a new worker (50 MiB) and the load (40);
    // measured 330 MiB, it holds neither.
    const { decision } = grown(400).decide(atBound, ask, idle);
    assert.equal(decision.kind, 'place');
    assert.deepEqual(decision.kind === 'place' && decision.evict.map((m) => m.jobId), ['a']);
    // A budget that holds the worker's measure and a new one like it (310 MiB beside its
    // models) opens it.
    assert.equal(grown(700).decide(atBound, ask, idle).decision.kind, 'open');
  });

  it('costs a new worker at what the workers measure beside their models now, not at the least they did', () => {
    // w1: 50 MiB beside its one model at first, 90 once re-measured under traffic.
    const memory = new SharedMemory({
      budgetBytes: 190 * MiB,
      minResidencyMs: 0,
      workerLimitBytes: 1024 * MiB,
    });
    memory.observeStats('w1', {
      rss_bytes: 60 * MiB,
      memory_bytes: 60 * MiB,
      memory_limit_bytes: 1024 * MiB,
      model_memory_bytes: { a: 10 * MiB },
    });
    memory.sizes.observe('m-131', 5 * MiB);
    const full = [{ name: 'w1', hosted: [hosted(1, 'a')], maxModels: 1 }];
    // 130 MiB of the budget left beside w1's 60: a new worker at 50 and the load (10) fit.
    assert.equal(memory.decide(full, ask, idle).decision.kind, 'open');
    memory.observeUsage('w1', {
      rss_bytes: 100 * MiB,
      memory_bytes: 100 * MiB,
      memory_limit_bytes: 1024 * MiB,
    });
    // 90 left beside its 100: a worker that would measure 90 beside its models does not fit
    // with the load; the load takes the least recently used model's place instead.
    const { decision } = memory.decide(full, ask, idle);
    assert.deepEqual(decision.kind === 'place' && decision.evict.map((m) => m.jobId), ['a']);
  });

  it('places a load where freed memory is, not on a worker whose measure it would grow', () => {
    const memory = grown(400);
    // w2 measures exactly what it is charged (50 MiB of runtime and one model of 10 MiB).
    measureW2(memory, 60, { d: 10 * MiB });
    const w2 = { name: 'w2', hosted: [onW2(4, 'd')] };
    // 400 - 330 - 60 = 10 MiB beside both measures: too little for w2 (which has the most
    // room under its limit); w1 reuses the 260 MiB it measures beyond its charge.
    const { decision } = memory.decide([{ name: 'w1', hosted: atBound[0]!.hosted }, w2], ask, idle);
    assert.deepEqual(decision, { kind: 'place', workerId: 'w1', evict: [], youngEvicted: false });
  });
  it('a fleet whose workers all measure past the budget evicts no more than each load needs, never the whole excess', () => {
    // Two workers grown to 330 MiB each, charged 70 each, under a budget of 200 MiB: 460
    // MiB over by measure, which no eviction gives back. The load (40 MiB) fits in the 60
    // the charge leaves and in the memory either worker freed: nothing is evicted.
    const memory = grown(200);
    measureW2(memory, 70, { d: 10 * MiB, e: 10 * MiB });
    memory.observeUsage('w2', {
      rss_bytes: 330 * MiB,
      memory_bytes: 330 * MiB,
      memory_limit_bytes: 1024 * MiB,
    });
    const { decision } = memory.decide(
      [
        { name: 'w1', hosted: atBound[0]!.hosted },
        { name: 'w2', hosted: [onW2(4, 'd'), onW2(5, 'e')] },
      ],
      { ...ask, mayOpen: false },
      idle,
    );
    assert.equal(decision.kind, 'place');
    assert.deepEqual(decision.kind === 'place' && decision.evict, []);
  });
});

describe("shared memory: a placement's views list the models only when it looks at them", () => {
  // Two workers with 100 models each, under a budget with room for one more load, or not.
  function setUp(budgetMiB: number) {
    const memory = new SharedMemory({
      budgetBytes: budgetMiB * MiB,
      minResidencyMs: 0,
      workerLimitBytes: 1024 * MiB,
    });
    const workers = ['w1', 'w2'].map((name, w) => {
      const models: Record<string, number> = {};
      const servers: HostedServer[] = [];
      for (let i = 0; i < 100; i++) {
        const jobId = `${name}-j${i}`;
        models[jobId] = MiB;
        const one = hosted(w * 100 + i + 1, jobId);
        servers.push({ ...one, server: { ...one.server, workerName: name } });
      }
      // w2 measures a little more: their room differs (equal room is broken by the requests in flight).
      memory.observeStats(name, {
        rss_bytes: (200 + w) * MiB,
        memory_bytes: (200 + w) * MiB,
        memory_limit_bytes: 1024 * MiB,
        model_memory_bytes: models,
      });
      return { name, hosted: servers, maxModels: 1000 };
    });
    memory.sizes.observe('m-131', MiB);
    const asked: string[] = [];
    const counting: Activity = {
      inFlight: (s) => (asked.push(s.jobId), 0),
      lastUsedAt: (s) => Date.parse(s.lastUsedAt!) + s.number,
    };
    const decide = () =>
      memory.decide(workers, { served: 'new', model: 'm-131', now: Date.now(), mayOpen: false }, counting)
        .decision;
    return { decide, asked };
  }

  it('finds room by the sums alone: no hosted model is asked about', () => {
    const { decide, asked } = setUp(1024);
    const decision = decide();
    assert.equal(decision.kind, 'place');
    assert.deepEqual(decision.kind === 'place' && decision.evict, []);
    assert.deepEqual(asked, []);
  });

  it('lists them, with their activity, when room must be made, and evicts the least recently used', () => {
    // 401 MiB charged (runtimes of 100 and 101 MiB, 200 models of 1 MiB) of a 401 MiB budget.
    const { decide, asked } = setUp(401);
    const decision = decide();
    assert.equal(decision.kind, 'place');
    assert.deepEqual(decision.kind === 'place' && decision.evict.map((m) => m.jobId), ['w1-j0', 'w1-j1']);
    assert.ok(asked.length >= 100, 'the models were looked at');
  });
});
