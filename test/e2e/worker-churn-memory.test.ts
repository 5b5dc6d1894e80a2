/**
 * A shared worker's memory comes back under churn: the worker program started as the
 * process runtime starts it (its environment from workerSpec: the V8 flags included),
 * 100 models resident, then 1,000 cycles of loading another model, one inference and
 * unloading it. Before the worker kept its young generation small and collected after
 * unloads (src/worker/heap-compaction.ts), the same cycles grew its rss by ~37 MiB
 * (docs/worker.md#the-heap-after-unloads); now by ~3. The bound sits well between the
 * two, so it tells them apart on a busy machine: memory figures do not depend on speed.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { link, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { DIGITS } from '../helpers/fixtures.js';
import { MODELS_DIR } from '../helpers/paths.js';
import { startSpecWorker } from '../helpers/worker-process.js';

const RESIDENT = 100;
const CYCLES = 1_000;
/** Growth allowed over the cycles: ~3 MiB measured now, ~37 MiB before the fix. */
const BOUND_MIB = 12;

describe('worker: memory under load/unload churn', { timeout: 180_000 }, () => {
  const workers = new WorkerClient();
  let child: ChildProcess | undefined;
  let endpoint: string;
  let store: string;
  before(async () => {
    // A store of RESIDENT + CYCLES models, each its own directory of m-131's files (as the density bench's).
    store = await mkdtemp(path.join(os.tmpdir(), 'modeldock-churn-models-'));
    for (let i = 0; i < RESIDENT + CYCLES; i++) {
      const dir = path.join(store, `c-${i}`);
      await mkdir(dir);
      for (const file of ['model.onnx', 'model.json']) {
        await link(path.join(MODELS_DIR, 'm-131', file), path.join(dir, file));
      }
    }
    ({ child, endpoint } = await startSpecWorker(workers, 'churn-test', store));
  });
  after(async () => {
    await workers.close();
    child?.kill('SIGKILL');
    if (store) await rm(store, { recursive: true, force: true });
  });

  /** The worker's resident memory as the kernel reports it. */
  const rssMiB = async () => {
    const status = await readFile(`/proc/${child!.pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
  };

  it('comes back near where it started after 1,000 loads, inferences and unloads', async () => {
    for (let i = 0; i < RESIDENT; i++) await workers.load(endpoint, `r${i}`, `c-${i}`);
    const request = {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
    };
    const start = await rssMiB();
    for (let c = 0; c < CYCLES; c++) {
      const name = `j${c}`;
      await workers.load(endpoint, name, `c-${RESIDENT + c}`, undefined, 'ds-550');
      await workers.infer(endpoint, name, request);
      await workers.unload(endpoint, name);
    }
    const end = await rssMiB();
    console.log(`# rss ${start.toFixed(1)} → ${end.toFixed(1)} MiB over ${CYCLES} cycles`);
    assert.ok(end - start < BOUND_MIB, `rss grew ${(end - start).toFixed(1)} MiB over ${CYCLES} cycles`);
    // Nothing of the cycles is left loaded, and the resident models still answer.
    assert.equal((await workers.stats(endpoint)).loaded?.length, RESIDENT);
    await workers.infer(endpoint, 'r0', request);
  });
});
