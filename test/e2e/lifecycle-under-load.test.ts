/**
 * Zero failed inference requests through lifecycle transitions, under load, on the
 * Docker and the process runtime: a few keep-alive connections keep inference going
 * (hot path, Fastify /v2 route and /v1, in turn) while the job is unloaded and loaded
 * again and again, evicted by the loaded-model limit for a second job, and terminated;
 * and while the router itself is stopped with SIGTERM and started again. Every request
 * sent while its job was meant to serve must answer 2xx; after a TERMINATE, requests
 * get a 404 that says the job is terminated.
 *
 * The router runs as its own process (`modeldock start`), as deployed, so the load
 * generator does not share its event loop. Bounded: a handful of transitions, a capped
 * number of requests, loopback only.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Dockerode from 'dockerode';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import {
  DIGIT_INFER_BODY,
  InferenceLoad,
  allInferPaths,
  failureDigest,
  type LoadSample,
} from '../helpers/inference-load.js';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT } from '../helpers/paths.js';
import { getJson, postJson, removeInstanceContainers, uniqueInstance } from '../helpers/router.js';
import { spawnRouter, type RouterProcess } from '../helpers/router-process.js';

const CONNECTIONS = 6;
const MAX_REQUESTS = 60_000;
/** Answers to wait for between two transitions, so each one happens under load. */
const BETWEEN = 60;
const CYCLES = 6;

const ok = (s: LoadSample) => s.status >= 200 && s.status < 300;

function assertAllOk(samples: LoadSample[], what: string): void {
  assert.ok(samples.length > 2 * BETWEEN, `${what}: only ${samples.length} requests were sent`);
  const failed = samples.filter((s) => !ok(s));
  assert.equal(
    failed.length,
    0,
    `${what}: ${failed.length} of ${samples.length} requests failed:\n${failureDigest(failed)}`,
  );
}

interface Started {
  url: string;
  router: RouterProcess;
}

async function create(t: Started, job: string): Promise<void> {
  const created = await postJson(`${t.url}/v1/jobs`, { job_id: job, model: 'm-131', dataset: 'ds-550' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
}

async function operations(t: Started, job: string, type: string) {
  return (await getJson(`${t.url}/v1/operations?job_id=${job}&type=${type}&limit=1000`)).body.operations as {
    reason: string;
    status: string;
    steps: { name: string }[];
    warnings: string[];
  }[];
}

/** A router process of its own (instance, store), on one runtime; `restart` keeps both. */
class RouterUnderTest implements Started {
  router!: RouterProcess;
  readonly instance = uniqueInstance('ld');
  private dataDir = '';

  constructor(
    private readonly runtime: 'docker' | 'process',
    private readonly env: Record<string, string>,
  ) {}

  get url(): string {
    return this.router.url;
  }

  async start(): Promise<this> {
    this.dataDir ||= await mkdtemp(path.join(os.tmpdir(), 'modeldock-load-'));
    this.router = await spawnRouter(
      {
        MODELDOCK_INSTANCE: this.instance,
        MODELDOCK_RUNTIME: this.runtime,
        MODELDOCK_DATABASE: `sqlite:${this.dataDir}/modeldock.db`,
        MODELDOCK_MODELS_DIR: MODELS_DIR,
        MODELDOCK_DATASETS_DIR: DATASETS_DIR,
        MODELDOCK_WORKER_MEMORY: '1g',
        MODELDOCK_LOG_LEVEL: process.env.MODELDOCK_TEST_LOG_LEVEL ?? 'warn',
        ...this.env,
      },
      path.join(this.dataDir, 'router.log'),
    );
    return this;
  }

  async cleanup(): Promise<void> {
    await this.router?.kill('SIGKILL');
    if (this.runtime === 'docker') await removeInstanceContainers(new Dockerode(), this.instance);
    else {
      // Where `modeldock start` keeps the process runtime's state (src/cli/backends.ts).
      const runtime = new ProcessRuntime({
        instance: this.instance,
        stateDir: path.join(REPO_ROOT, 'data', 'process-runtime'),
        modelsDir: MODELS_DIR,
        datasetsDir: DATASETS_DIR,
      });
      for (const worker of await runtime.list()) await runtime.remove(worker.name);
      await runtime.close();
    }
    if (this.dataDir) await rm(this.dataDir, { recursive: true, force: true });
  }
}

for (const runtime of ['docker', 'process'] as const) {
  describe(`lifecycle transitions under inference load (${runtime} runtime)`, () => {
    // A drain timeout far beyond the test's: a shutdown that waited for it would fail the test.
    const t = new RouterUnderTest(runtime, { MODELDOCK_DRAIN_TIMEOUT_MS: '600000' });
    before(async () => {
      await t.start();
    });
    after(async () => {
      await t.cleanup();
    });

    it('unload/load cycles fail no request', { timeout: 120_000 }, async () => {
      await create(t, 'u1');
      const load = new InferenceLoad(t.url, allInferPaths('u1'), {
        connections: CONNECTIONS,
        maxRequests: MAX_REQUESTS,
      }).start();
      try {
        for (let cycle = 0; cycle < CYCLES; cycle++) {
          await load.answered(BETWEEN);
          const unloaded = await postJson(`${t.url}/v1/jobs/u1/unload`, {});
          assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
          await load.answered(BETWEEN);
          const loaded = await postJson(`${t.url}/v1/jobs/u1/load`, {});
          assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
        }
        await load.answered(BETWEEN);
      } finally {
        await load.stop();
      }
      assertAllOk(load.samples, 'unload/load');
      const unloads = (await operations(t, 'u1', 'DEPLOY_UNLOAD')).filter((op) => op.reason === 'request');
      assert.equal(unloads.length, CYCLES);
      for (const op of unloads) {
        assert.equal(op.status, 'succeeded');
        assert.deepEqual(
          op.steps.map((s) => s.name),
          ['drain', 'unload'],
          'an unload withdraws the route and drains before it unloads',
        );
      }
    });

    it(
      'TERMINATE lets in-flight requests finish; later ones get a 404 naming the state',
      {
        timeout: 120_000,
      },
      async () => {
        await create(t, 't1');
        const load = new InferenceLoad(t.url, allInferPaths('t1'), {
          connections: CONNECTIONS,
          maxRequests: MAX_REQUESTS,
        }).start();
        let issuedAt = 0;
        let doneAt = 0;
        try {
          await load.answered(BETWEEN * 3);
          issuedAt = performance.now();
          const terminated = await fetch(`${t.url}/v1/jobs/t1`, { method: 'DELETE' });
          doneAt = performance.now();
          assert.equal(terminated.status, 200, await terminated.text());
          await load.answered(BETWEEN);
        } finally {
          await load.stop();
        }
        // Which requests reached the router before the TERMINATE cannot be told from here;
        // each one either was served (2xx) or arrived after and says the job is terminated.
        // Nothing else: no 502 from a stopped worker, no 409, no cut connection.
        const terminatedAnswer = (s: LoadSample) => s.status === 404 && /terminated/.test(s.error ?? '');
        const wrong = load.samples.filter((s) => !ok(s) && !terminatedAnswer(s));
        assert.equal(wrong.length, 0, failureDigest(wrong));
        const answeredBefore = load.samples.filter((s) => s.doneAt < issuedAt);
        assert.ok(answeredBefore.length >= BETWEEN * 3 && answeredBefore.every(ok));
        const after = load.samples.filter((s) => s.sentAt > doneAt);
        assert.ok(after.length >= BETWEEN, `${after.length} sent after`);
        assert.ok(after.every(terminatedAnswer), failureDigest(after.filter((s) => !terminatedAnswer(s))));
        const [op] = await operations(t, 't1', 'TERMINATE');
        assert.deepEqual(
          op!.steps.map((s) => s.name),
          ['drain', 'stop', 'remove'],
        );
      },
    );

    it(
      'SIGTERM finishes what is in flight, and the restarted router serves again',
      {
        timeout: 120_000,
      },
      async () => {
        await create(t, 's1');
        const load = new InferenceLoad(t.url, allInferPaths('s1'), {
          connections: CONNECTIONS,
          maxRequests: MAX_REQUESTS,
        }).start();
        // An open event stream is ended by the shutdown, not waited for.
        const events = await fetch(`${t.url}/v1/events`);
        const eventsEnded = events.text();
        let signalledAt = 0;
        try {
          await load.answered(BETWEEN * 3);
          signalledAt = performance.now();
          assert.equal(await t.router.kill('SIGTERM'), 0, 'the router exits cleanly');
        } finally {
          await load.stop();
        }
        assert.match(await eventsEnded, /^: modeldock events/);
        // Every HTTP answer is a 2xx; requests sent once the router stopped listening find
        // no one there (refused, or a kept-alive connection it closed while idle): never
        // an error answer, never a request cut off after the router took it.
        const answered = load.samples.filter((s) => s.status !== 0);
        const notServed = load.samples.filter((s) => s.status === 0);
        assert.ok(answered.every(ok), failureDigest(answered.filter((s) => !ok(s))));
        assert.ok(
          answered.filter((s) => s.doneAt > signalledAt).length > 0,
          'requests in flight at SIGTERM were answered',
        );
        for (const s of notServed) {
          assert.ok(s.sentAt >= signalledAt, `a request sent before SIGTERM got no answer: ${s.error}`);
          assert.match(s.error ?? '', /ECONNREFUSED|other side closed|ECONNRESET/);
        }

        await t.start();
        const again = new InferenceLoad(t.url, allInferPaths('s1'), {
          connections: CONNECTIONS,
          maxRequests: MAX_REQUESTS,
        }).start();
        try {
          await again.answered(BETWEEN * 3);
        } finally {
          await again.stop();
        }
        assertAllOk(again.samples, 'after the restart');
      },
    );
  });

  describe(`eviction by MODELDOCK_MAX_LOADED_MODELS=1 under inference load (${runtime} runtime)`, () => {
    const t = new RouterUnderTest(runtime, { MODELDOCK_MAX_LOADED_MODELS: '1' });
    before(async () => {
      await t.start();
    });
    after(async () => {
      await t.cleanup();
    });

    it(
      'a job evicted for another, and loaded again, fails no request of either',
      { timeout: 120_000 },
      async () => {
        await create(t, 'e1');
        const load = new InferenceLoad(t.url, allInferPaths('e1'), {
          connections: CONNECTIONS,
          maxRequests: MAX_REQUESTS,
        }).start();
        const second: LoadSample[] = [];
        try {
          await load.answered(BETWEEN);
          await create(t, 'e2'); // evicts e1, which its load brings back
          for (let round = 0; round < CYCLES / 2; round++) {
            await load.answered(BETWEEN);
            // e2 unloaded, then used: its load on demand evicts e1 again, under load.
            assert.equal((await postJson(`${t.url}/v1/jobs/e2/unload`, {})).status, 200);
            const sentAt = performance.now();
            const answer = await postJson(`${t.url}/v2/models/e2/infer`, JSON.parse(DIGIT_INFER_BODY));
            second.push({
              job: 'e2',
              path: '/v2/models/e2/infer',
              sentAt,
              doneAt: performance.now(),
              status: answer.status,
              ...(answer.status === 200 ? {} : { error: JSON.stringify(answer.body) }),
            });
          }
          await load.answered(BETWEEN);
        } finally {
          await load.stop();
        }
        assertAllOk(load.samples, 'e1 through evictions');
        assert.deepEqual(
          second.filter((s) => !ok(s)),
          [],
          'e2',
        );
        const evictions = (await operations(t, 'e1', 'DEPLOY_UNLOAD')).filter((op) => op.reason === 'lru');
        assert.ok(evictions.length >= 2, `e1 was evicted ${evictions.length} times`);
        for (const op of evictions) assert.equal(op.steps[0]!.name, 'drain');
      },
    );
  });
}
