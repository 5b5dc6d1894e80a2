import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { poolBound, withServerRoom } from '../../src/lifecycle/warm-pool.js';

const MiB = 1024 ** 2;

describe('poolBound (how many warm-pool workers the memory budget fits)', () => {
  it('without a budget the pool keeps its configured size', () => {
    assert.deepEqual(poolBound(3, undefined, 64 * MiB), { limit: 3, boundedBy: null });
  });

  it('holds only whole workers that fit in what the models leave', () => {
    assert.deepEqual(poolBound(3, 100 * MiB, 64 * MiB), { limit: 1, boundedBy: 'memory_budget' });
    assert.deepEqual(poolBound(3, 128 * MiB, 64 * MiB), { limit: 2, boundedBy: 'memory_budget' });
  });

  it('is not bounded when the configured size fits', () => {
    assert.deepEqual(poolBound(3, 192 * MiB, 64 * MiB), { limit: 3, boundedBy: null });
    assert.deepEqual(poolBound(3, 10_000 * MiB, 64 * MiB), { limit: 3, boundedBy: null });
  });

  it('holds none when the models take the whole budget or more', () => {
    assert.deepEqual(poolBound(2, 0, 64 * MiB), { limit: 0, boundedBy: 'memory_budget' });
    assert.deepEqual(poolBound(2, -5 * MiB, 64 * MiB), { limit: 0, boundedBy: 'memory_budget' });
  });

  it('a pool of size 0 is never bounded', () => {
    assert.deepEqual(poolBound(0, 0, 64 * MiB), { limit: 0, boundedBy: null });
  });
});

describe('withServerRoom (a pool of foreign servers counted in MODELDOCK_MAX_SERVERS)', () => {
  it('holds no more than the room the live servers leave', () => {
    assert.deepEqual(withServerRoom({ limit: 2, boundedBy: null }, 1), {
      limit: 1,
      boundedBy: 'max_servers',
    });
    assert.deepEqual(withServerRoom({ limit: 2, boundedBy: null }, 0), {
      limit: 0,
      boundedBy: 'max_servers',
    });
    assert.deepEqual(withServerRoom({ limit: 2, boundedBy: null }, -1), {
      limit: 0,
      boundedBy: 'max_servers',
    });
  });

  it('keeps the bound it has when the room is enough, or when the pool is counted apart', () => {
    assert.deepEqual(withServerRoom({ limit: 2, boundedBy: null }, 5), { limit: 2, boundedBy: null });
    assert.deepEqual(withServerRoom({ limit: 1, boundedBy: 'memory_budget' }, 3), {
      limit: 1,
      boundedBy: 'memory_budget',
    });
    assert.deepEqual(withServerRoom({ limit: 2, boundedBy: null }, undefined), { limit: 2, boundedBy: null });
  });
});
