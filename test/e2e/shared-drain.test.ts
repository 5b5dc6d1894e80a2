/**
 * A shared fleet measuring over MODELDOCK_MEMORY_BUDGET shrinks (docs/operations.md#a-fleet-measuring-past-its-budget),
 * on the process runtime: three shared workers host two jobs each (MODELDOCK_SHARED_JOBS_PER_WORKER=2),
 * every job answered a request. The router restarts (the workers and their models are
 * adopted) under a budget of what the three measure less 40 % of the smallest: evicting
 * models cannot bring that measure down, so the fleet drains one worker (its models
 * evicted with reason `drain`) and closes it; the two others stay. Every job then answers
 * again, the drained ones loaded again on the workers left: nothing fails.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import type { RuntimeEvent } from '../../src/runtime/runtime.js';
import { DIGIT_INFER_BODY } from '../helpers/inference-load.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { getJson, postJson, startTestRouter, uniqueInstance, type TestRouter } from '../helpers/router.js';

const JOBS = ['dr1', 'dr2', 'dr3', 'dr4', 'dr5', 'dr6'];
const SHARED = {
  MODELDOCK_PLACEMENT: 'shared',
  MODELDOCK_SHARED_JOBS_PER_WORKER: '2',
};

/** The first event `match` takes from `events`, within `ms`. */
async function firstEvent(
  events: AsyncIterable<RuntimeEvent>,
  match: (event: RuntimeEvent) => boolean,
  ms: number,
): Promise<RuntimeEvent> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no matching runtime event within ${ms} ms`)), ms);
  });
  const found = (async () => {
    for await (const event of events) if (match(event)) return event;
    throw new Error('the runtime event stream ended');
  })();
  try {
    return await Promise.race([found, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function jobWorker(t: TestRouter, job: string): Promise<string> {
  const { status, body } = await getJson(`${t.url}/v1/jobs/${job}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body.server.container_name as string;
}

describe('a shared fleet measuring over its budget drains and closes a worker', { timeout: 300_000 }, () => {
  let stateDir: string;
  let dataDir: string;
  const instance = uniqueInstance('drain');
  const routers: TestRouter[] = [];
  const makeRuntime = () =>
    new ProcessRuntime({ instance, stateDir, modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR });

  before(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-drain-state-'));
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-drain-data-'));
  });
  after(async () => {
    for (const t of routers) await t.stop();
    const runtime = makeRuntime();
    for (const worker of await runtime.list()) await runtime.remove(worker.name);
    await runtime.close();
    await rm(stateDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it('one worker is drained and closed, and every job answers its next request', async () => {
    const first = await startTestRouter({ instance, dataDir, runtime: makeRuntime, env: SHARED });
    routers.push(first);
    for (const job of JOBS) {
      const created = await postJson(`${first.url}/v1/jobs`, {
        job_id: job,
        model: 'm-131',
        dataset: 'ds-550',
      });
      assert.ok([200, 201].includes(created.status), JSON.stringify(created.body).slice(0, 400));
      const answer = await postJson(`${first.url}/v2/models/${job}/infer`, DIGIT_INFER_BODY);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    const workers = await first.runtime.list();
    assert.equal(workers.length, 3, workers.map((w) => w.name).join(', '));
    const measured = await Promise.all(
      workers.map(async (w) => {
        const stats = await first.router.workers.stats(w.endpoint!);
        return stats.memory_bytes ?? stats.rss_bytes;
      }),
    );
    const hostedBefore = new Map<string, string[]>();
    for (const job of JOBS) {
      const worker = await jobWorker(first, job);
      hostedBefore.set(worker, [...(hostedBefore.get(worker) ?? []), job]);
    }
    await first.stop();

    // The budget: what the three measure less 40 % of the smallest. Closing any one brings
    // the fleet under it; evicting every model of all three would not.
    const total = measured.reduce((sum, bytes) => sum + bytes, 0);
    const budget = Math.floor(total - 0.4 * Math.min(...measured));
    const runtime = makeRuntime();
    const watching = new AbortController();
    const destroyed = firstEvent(
      runtime.events(watching.signal),
      (event) => event.type === 'destroy' && event.name.startsWith(`${instance}-shared-`),
      120_000,
    );
    const second = await startTestRouter({
      instance,
      dataDir,
      runtime: () => runtime,
      env: {
        ...SHARED,
        MODELDOCK_MEMORY_BUDGET: String(budget),
        MODELDOCK_MIN_RESIDENCY_MS: '0',
        // The fleet's periodic pass every second.
        MODELDOCK_SHARED_IDLE_MS: '4000',
      },
    });
    routers.push(second);
    const closed = (await destroyed.finally(() => watching.abort())).name;
    const drainedJobs = hostedBefore.get(closed);
    assert.ok(drainedJobs, `${closed} hosted jobs: ${JSON.stringify([...hostedBefore])}`);

    const left = (await runtime.list()).map((w) => w.name).sort();
    assert.deepEqual(
      left,
      [...hostedBefore.keys()].filter((name) => name !== closed).sort(),
      'one worker closed, the two others kept',
    );
    const { body } = await getJson(`${second.url}/v1/operations?type=EVICT&limit=100`);
    const drains = (body.operations as { job_id: string; reason: string; status: string }[]).filter(
      (op) => op.reason === 'drain',
    );
    assert.deepEqual(
      drains.map((op) => op.job_id).sort(),
      [...drainedJobs].sort(),
      'its models were evicted',
    );
    assert.ok(
      drains.every((op) => op.status === 'succeeded'),
      JSON.stringify(drains),
    );
    const metrics = await (await fetch(`${second.url}/metrics`)).text();
    assert.match(metrics, /^modeldock_shared_workers_drained_total 1$/m);

    // Every job answers: the drained ones are loaded again on a worker that is left.
    for (const job of JOBS) {
      const answer = await postJson(`${second.url}/v2/models/${job}/infer`, DIGIT_INFER_BODY);
      assert.equal(answer.status, 200, `${job}: ${JSON.stringify(answer.body)}`);
    }
    for (const job of drainedJobs) assert.notEqual(await jobWorker(second, job), closed);
  });
});
