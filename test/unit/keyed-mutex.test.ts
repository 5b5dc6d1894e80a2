import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedMutex } from '../../src/keyed-mutex.js';

describe('KeyedMutex (per-job serialization)', () => {
  it('never interleaves two tasks of one key and keeps their order', async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const first = mutex.run('a1', async () => {
      log.push('first:start');
      await gate;
      log.push('first:end');
    });
    const second = mutex.run('a1', async () => {
      log.push('second:start');
      log.push('second:end');
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log, ['first:start'], 'the second task waits for the first');
    release();
    await Promise.all([first, second]);
    assert.deepEqual(log, ['first:start', 'first:end', 'second:start', 'second:end']);
  });

  it('runs different keys in parallel', async () => {
    const mutex = new KeyedMutex();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = mutex.run('a1', () => gate);
    let otherRan = false;
    await mutex.run('a2', async () => {
      otherRan = true;
    });
    assert.equal(otherRan, true, 'a2 did not wait for a1');
    release();
    await slow;
  });

  it('a failing task does not block the next one and the key is released afterwards', async () => {
    const mutex = new KeyedMutex();
    await assert.rejects(
      mutex.run('a1', async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(await mutex.run('a1', async () => 42), 42);
    assert.equal(mutex.isBusy('a1'), false);
  });
});
