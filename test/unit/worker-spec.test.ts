/**
 * What the router tells every worker it starts (src/lifecycle/worker-spec.ts): here, the
 * ONNX Runtime threads its CPU limit allows. A shared worker holds hundreds of sessions,
 * each with a pool of that many threads less one: more threads than CPUs only queue
 * behind the quota, and hundreds of idle pool threads slowed every load several-fold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { workerSpec } from '../../src/lifecycle/worker-spec.js';
import type { ServingRuntime } from '../../src/lifecycle/serving-runtimes.js';
import { WORKER_THREADS_ENV } from '../../src/worker-limits.js';

const limits = (cpus: number) => ({ memoryBytes: 1024 ** 3, nanoCpus: Math.round(cpus * 1e9), pids: 128 });

describe('workerSpec: intra-op threads from the CPU limit', () => {
  it('gives a worker as many threads as CPUs it may use, at least one', () => {
    assert.equal(workerSpec('w', {}, limits(1)).env?.[WORKER_THREADS_ENV], '1');
    assert.equal(workerSpec('w', {}, limits(2)).env?.[WORKER_THREADS_ENV], '2');
    assert.equal(workerSpec('w', {}, limits(2.4)).env?.[WORKER_THREADS_ENV], '2');
    assert.equal(workerSpec('w', {}, limits(0.25)).env?.[WORKER_THREADS_ENV], '1');
  });

  it('says nothing of threads to a foreign server (it is not modeldock’s worker)', () => {
    const foreign = { name: 'mlserver', modeldockWorker: false } as unknown as ServingRuntime;
    assert.equal(workerSpec('w', {}, limits(1), foreign).env?.[WORKER_THREADS_ENV], undefined);
  });
});
