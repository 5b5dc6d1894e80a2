/** The shared placement rule (src/lifecycle/shared-placement.ts): pure, so tested alone. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fewestModelsRule } from '../../src/lifecycle/shared-placement.js';

describe('shared placement: fewest models, bounded per worker', () => {
  const rule = fewestModelsRule(3);

  it('opens a worker when there is none', () => {
    assert.deepEqual(rule.choose('a1', []), { open: true });
  });

  it('picks the worker hosting the fewest models (first by name on a tie)', () => {
    const workers = [
      { name: 'w-0002', hosted: ['x', 'y'] },
      { name: 'w-0003', hosted: ['z'] },
      { name: 'w-0001', hosted: ['v'] },
    ];
    assert.deepEqual(rule.choose('a1', workers), { worker: 'w-0001' });
  });

  it('never picks a full worker: opens one when all are full', () => {
    const workers = [
      { name: 'w-0001', hosted: ['a', 'b', 'c'] },
      { name: 'w-0002', hosted: ['d', 'e', 'f'] },
    ];
    assert.deepEqual(rule.choose('a1', workers), { open: true });
    assert.deepEqual(rule.choose('a1', [...workers, { name: 'w-0003', hosted: ['g', 'h'] }]), {
      worker: 'w-0003',
    });
  });

  it('never puts a name on a worker that already hosts it (a replica of the same job)', () => {
    const workers = [
      { name: 'w-0001', hosted: ['a1'] },
      { name: 'w-0002', hosted: ['b', 'c'] },
    ];
    assert.deepEqual(rule.choose('a1', workers), { worker: 'w-0002' });
    assert.deepEqual(rule.choose('a1', [{ name: 'w-0001', hosted: ['a1'] }]), { open: true });
  });
});
