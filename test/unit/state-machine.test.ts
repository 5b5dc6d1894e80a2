import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canTransition } from '../../src/lifecycle/state-machine.js';
import { SERVER_STATES } from '../../src/store/records.js';

describe('server state machine', () => {
  it('allows the lifecycle of docs/operations.md', () => {
    const path = [
      'creating',
      'loading',
      'ready',
      'unloading',
      'unloaded',
      'loading',
      'ready',
      'terminating',
      'terminated',
    ] as const;
    for (let i = 1; i < path.length; i++)
      assert.ok(canTransition(path[i - 1]!, path[i]!), `${path[i - 1]} → ${path[i]}`);
  });

  it('allows failed from anywhere but terminated, and recovery from failed', () => {
    for (const state of SERVER_STATES) {
      assert.equal(canTransition(state, 'failed'), state !== 'terminated', state);
    }
    assert.ok(canTransition('failed', 'creating'));
    assert.ok(canTransition('failed', 'loading'));
  });

  it('never leaves terminated: history is final', () => {
    for (const state of SERVER_STATES) assert.equal(canTransition('terminated', state), false);
  });

  it('refuses shortcuts that would skip the worker', () => {
    assert.equal(canTransition('creating', 'ready'), false);
    assert.equal(canTransition('unloaded', 'ready'), false);
    assert.equal(canTransition('terminating', 'ready'), false);
  });
});
