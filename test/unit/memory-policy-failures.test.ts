/**
 * How the memory policy fails (docs/operations.md#memory-policy): an unload that fails is
 * skipped for the next candidate, in the idle pass and when making room; when nothing
 * more can be unloaded the load goes ahead over the limit with a warning for its
 * operation and a count. Store and unloader are small fakes: this pins the decisions.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { MemoryPolicy, type MemoryPolicyOptions } from '../../src/lifecycle/memory-policy.js';
import type { ServerRecord } from '../../src/store/records.js';
import type { ServerFilter, Store } from '../../src/store/store.js';

function ready(jobId: string, lastUsedAt: string): ServerRecord {
  return {
    serverId: `inf-${jobId}`,
    jobId,
    model: 'm',
    kind: 'job',
    state: 'ready',
    lastUsedAt,
  } as ServerRecord;
}

interface Setup {
  servers: ServerRecord[];
  /** Jobs whose unload throws. */
  failing?: string[];
  /** Jobs with an operation in flight. */
  busy?: string[];
  options: Partial<MemoryPolicyOptions>;
}

function policy({ servers, failing = [], busy = [], options }: Setup) {
  const unloadAttempts: string[] = [];
  const overLimit: string[] = [];
  const store = {
    listServers: async (filter: ServerFilter = {}) =>
      servers.filter(
        (s) =>
          (!filter.kind || s.kind === filter.kind) && (!filter.states || filter.states.includes(s.state)),
      ),
  } as unknown as Store;
  const memoryPolicy = new MemoryPolicy(
    store,
    {
      deployUnload: async ({ jobId }) => {
        unloadAttempts.push(jobId);
        if (failing.includes(jobId)) throw new Error(`worker of job ${jobId} did not answer`);
        servers.find((s) => s.jobId === jobId)!.state = 'unloaded';
      },
      lastUsedAt: () => undefined,
      isJobBusy: (jobId) => busy.includes(jobId),
    },
    {
      idleUnloadMs: 0,
      maxLoadedModels: 0,
      memoryBudgetBytes: 0,
      modelBytes: async () => 40,
      onOverLimit: (limit) => void overLimit.push(limit),
      ...options,
    },
    pino({ level: 'silent' }),
  );
  return { memoryPolicy, unloadAttempts, overLimit };
}

describe('MemoryPolicy when an unload fails or nothing can be unloaded', () => {
  it('the idle pass goes on past a model whose unload fails', async () => {
    const servers = [
      ready('a', '2024-01-01T00:00:00Z'),
      ready('b', '2024-01-01T00:00:00Z'),
      ready('c', '2024-01-01T00:00:00Z'),
    ];
    const { memoryPolicy, unloadAttempts } = policy({
      servers,
      failing: ['a'],
      options: { idleUnloadMs: 1000 },
    });
    assert.deepEqual(await memoryPolicy.unloadIdle(Date.parse('2025-01-01T00:00:00Z')), ['b', 'c']);
    assert.deepEqual(unloadAttempts, ['a', 'b', 'c']);
  });

  it('a victim whose unload fails is skipped for the next least recently used one; the load is not failed', async () => {
    const servers = [
      ready('oldest', '2024-01-01T00:00:00Z'),
      ready('older', '2024-02-01T00:00:00Z'),
      ready('new', '2024-06-01T00:00:00Z'),
    ];
    const { memoryPolicy, unloadAttempts, overLimit } = policy({
      servers,
      failing: ['oldest'],
      options: { maxLoadedModels: 3 },
    });
    assert.deepEqual(await memoryPolicy.makeRoomFor('next', 'm'), { unloaded: ['older'] });
    assert.deepEqual(unloadAttempts, ['oldest', 'older']);
    assert.deepEqual(overLimit, []);
  });

  it('goes over the model limit with a warning and a count when every other model is busy or fails to unload', async () => {
    const servers = [ready('busy', '2024-01-01T00:00:00Z'), ready('broken', '2024-02-01T00:00:00Z')];
    const { memoryPolicy, unloadAttempts, overLimit } = policy({
      servers,
      busy: ['busy'],
      failing: ['broken'],
      options: { maxLoadedModels: 2 },
    });
    const room = await memoryPolicy.makeRoomFor('next', 'm');
    assert.deepEqual(room.unloaded, []);
    assert.match(room.overLimit ?? '', /over MODELDOCK_MAX_LOADED_MODELS=2: 2 other models are loaded/);
    assert.deepEqual(unloadAttempts, ['broken'], 'a busy job is never chosen');
    assert.deepEqual(overLimit, ['models']);
  });

  it('goes over the memory budget with a warning and a count when what is left cannot make room', async () => {
    const servers = [ready('a', '2024-01-01T00:00:00Z'), ready('b', '2024-02-01T00:00:00Z')];
    const { memoryPolicy, overLimit } = policy({
      servers,
      busy: ['b'],
      options: { memoryBudgetBytes: 100 },
    });
    // 40 + 40 + 40 > 100: a is unloaded, b is busy; 80 fits. With 70 it would not.
    assert.deepEqual(await memoryPolicy.makeRoomFor('next', 'm'), { unloaded: ['a'] });
    assert.deepEqual(overLimit, []);
    const tight = policy({
      servers: [ready('a', '2024-01-01T00:00:00Z'), ready('b', '2024-02-01T00:00:00Z')],
      busy: ['b'],
      options: { memoryBudgetBytes: 70 },
    });
    const room = await tight.memoryPolicy.makeRoomFor('next', 'm');
    assert.deepEqual(room.unloaded, ['a']);
    assert.match(
      room.overLimit ?? '',
      /over MODELDOCK_MEMORY_BUDGET=70 bytes: the models take 80 bytes with this one/,
    );
    assert.deepEqual(tight.overLimit, ['budget']);
  });

  it('stays silent when there is room', async () => {
    const { memoryPolicy, unloadAttempts, overLimit } = policy({
      servers: [ready('a', '2024-01-01T00:00:00Z')],
      options: { maxLoadedModels: 2, memoryBudgetBytes: 100 },
    });
    assert.deepEqual(await memoryPolicy.makeRoomFor('next', 'm'), { unloaded: [] });
    assert.deepEqual(unloadAttempts, []);
    assert.deepEqual(overLimit, []);
  });
});
