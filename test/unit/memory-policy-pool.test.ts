/**
 * MemoryPolicy with a warm pool under a memory budget: idle pool workers are given up
 * before any model is unloaded, and what the budget leaves for the pool is the budget
 * minus the models that hold (or are about to hold) memory. Store, unloader and pool are
 * small fakes: this pins the policy's decisions, the e2e test pins the real thing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { MemoryPolicy, type ReleasableMemory, type SharedCharge } from '../../src/lifecycle/memory-policy.js';
import type { ServerRecord, ServerState } from '../../src/store/records.js';
import type { ServerFilter, Store } from '../../src/store/store.js';

const SIZES: Record<string, number> = { a: 30, b: 30, c: 60, big: 50 };

function server(jobId: string, model: string, state: ServerState, lastUsedAt: string): ServerRecord {
  return { serverId: `inf-${jobId}`, jobId, model, kind: 'job', state, lastUsedAt } as ServerRecord;
}

function fakeStore(servers: ServerRecord[]): Store {
  const listServers = async (filter: ServerFilter = {}) =>
    servers.filter(
      (s) => (!filter.kind || s.kind === filter.kind) && (!filter.states || filter.states.includes(s.state)),
    );
  return { listServers } as unknown as Store;
}

/** A pool of `count` idle workers of `workerBytes` each; records every call in `log`. */
function fakePool(count: number, workerBytes: number, log: string[]): ReleasableMemory & { count: number } {
  return {
    count,
    heldBytes() {
      return this.count * workerBytes;
    },
    async releaseDownTo(maxBytes: number) {
      const before = this.count;
      while (this.count > 0 && this.count * workerBytes > maxBytes) this.count--;
      log.push(`release ${before - this.count}`);
      return before - this.count;
    },
  };
}

function policy(
  servers: ServerRecord[],
  budget: number,
  pool: ReleasableMemory | undefined,
  log: string[],
  shared?: SharedCharge,
) {
  return new MemoryPolicy(
    fakeStore(servers),
    {
      deployUnload: async ({ jobId }, reason) => {
        log.push(`unload ${jobId} (${reason})`);
        const victim = servers.find((s) => s.jobId === jobId)!;
        victim.state = 'unloaded';
      },
      lastUsedAt: () => undefined,
      isJobBusy: () => false,
    },
    {
      idleUnloadMs: 0,
      maxLoadedModels: 0,
      memoryBudgetBytes: budget,
      modelBytes: async (model) => SIZES[model] ?? 0,
      ...(pool ? { releasable: pool } : {}),
      ...(shared ? { shared } : {}),
    },
    pino({ level: 'silent' }),
  );
}

describe('MemoryPolicy with the warm pool', () => {
  it('makes room by giving up idle pool workers; no model is unloaded when that suffices', async () => {
    const log: string[] = [];
    const pool = fakePool(3, 20, log);
    const servers = [server('j1', 'a', 'ready', '2024-01-01T00:00:00Z'), server('j2', 'big', 'loading', '')];
    // 30 (a) + 50 (big) leaves 20 of 100: one pool worker of 20 stays.
    assert.deepEqual(await policy(servers, 100, pool, log).makeRoomFor('j2', 'big'), { unloaded: [] });
    assert.equal(pool.count, 1);
    assert.deepEqual(log, ['release 2']);
  });

  it('gives up the whole pool before it unloads the least recently used model', async () => {
    const log: string[] = [];
    const pool = fakePool(2, 20, log);
    const servers = [
      server('old', 'a', 'ready', '2024-01-01T00:00:00Z'),
      server('new', 'b', 'ready', '2024-06-01T00:00:00Z'),
      server('j3', 'c', 'loading', ''),
    ];
    // 30 + 30 + 60 > 100 even with no pool: the pool goes first, then the oldest model.
    assert.deepEqual(await policy(servers, 100, pool, log).makeRoomFor('j3', 'c'), { unloaded: ['old'] });
    assert.equal(pool.count, 0);
    assert.deepEqual(log, ['release 2', 'unload old (lru)']);
  });

  it('leaves the pool alone when the load fits beside it', async () => {
    const log: string[] = [];
    const pool = fakePool(2, 10, log);
    const servers = [server('j1', 'a', 'ready', '2024-01-01T00:00:00Z')];
    assert.deepEqual(await policy(servers, 100, pool, log).makeRoomFor('j2', 'b'), { unloaded: [] });
    assert.deepEqual(log, []);
  });

  it('tells the pool what the budget leaves beside models that hold or are about to hold memory', async () => {
    const servers = [
      server('j1', 'a', 'ready', ''),
      server('j2', 'b', 'creating', ''),
      server('j3', 'c', 'unloaded', ''),
      server('j4', 'big', 'terminated', ''),
    ];
    assert.equal(await policy(servers, 100, undefined, []).bytesLeftForPool(), 40);
    assert.equal(await policy(servers, 50, undefined, []).bytesLeftForPool(), -10);
    assert.equal(
      await policy(servers, 0, undefined, []).bytesLeftForPool(),
      undefined,
      'no budget, no bound',
    );
  });
});

/** A shared fleet measuring `bytes`, whose idle models give back `perModel` each when evicted. */
function fakeShared(bytes: number, evictable: number, perModel: number, log: string[]): SharedCharge {
  return {
    chargedBytes: () => bytes,
    async evictForOutside(need, forJob) {
      const count = Math.ceil(need / perModel);
      if (count > evictable) return { evicted: [], freedBytes: 0 };
      const evicted = Array.from({ length: count }, (_, i) => `s${i}`);
      log.push(`evict ${evicted.join(' ')} for ${forJob} (need ${need})`);
      bytes -= count * perModel;
      return { evicted, freedBytes: count * perModel };
    },
  };
}

describe('MemoryPolicy: one budget for dedicated and shared workers', () => {
  it("counts the shared workers' measured memory and evicts idle shared models for a dedicated load", async () => {
    const log: string[] = [];
    const servers = [server('j1', 'a', 'loading', '')];
    // 60 of shared workers + 30 (a) > 80: 10 must come back; the shared fleet gives 20.
    const room = await policy(servers, 80, undefined, log, fakeShared(60, 2, 20, log)).makeRoomFor('j1', 'a');
    assert.deepEqual(room, { unloaded: ['s0'] });
    assert.deepEqual(log, ['evict s0 for j1 (need 10)']);
  });

  it('unloads idle dedicated models first, then shared ones; over the limit with a warning when neither can', async () => {
    const log: string[] = [];
    const servers = [server('old', 'a', 'ready', '2024-01-01T00:00:00Z'), server('j2', 'c', 'loading', '')];
    // 50 shared + 30 (a) + 60 (c) = 140 > 100: unloading a leaves 110, one shared model (20) 90.
    const room = await policy(servers, 100, undefined, log, fakeShared(50, 1, 20, log)).makeRoomFor(
      'j2',
      'c',
    );
    assert.deepEqual(room, { unloaded: ['old', 's0'] });
    const none: string[] = [];
    const over = await policy(
      [server('j3', 'c', 'loading', '')],
      100,
      undefined,
      none,
      fakeShared(90, 0, 20, none),
    ).makeRoomFor('j3', 'c');
    assert.match(over.overLimit ?? '', /MODELDOCK_MEMORY_BUDGET=100 bytes: the models take 150 bytes/);
  });

  it('leaves the pool what the budget leaves beside dedicated models and shared workers', async () => {
    const servers = [server('j1', 'a', 'ready', '')];
    assert.equal(await policy(servers, 100, undefined, [], fakeShared(50, 0, 10, [])).bytesLeftForPool(), 20);
  });
});
