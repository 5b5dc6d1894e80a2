/**
 * Autoscaling on the real engine: load drives a job from one replica to several and,
 * once it eases, back to one — with no failed request throughout; a job with min 0
 * scales to zero when idle and its next request is served (never a 4xx/5xx for being
 * cold); a killed replica is restarted while the job's other replica keeps serving.
 * Delays are short here so the test runs in seconds; the logic is the defaults'.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LIVE_STATES } from '../../src/lifecycle/state-machine.js';
import type { ServerRecord, ServerState } from '../../src/store/records.js';
import { allInferPaths, DIGIT_INFER_BODY, failureDigest, InferenceLoad } from '../helpers/inference-load.js';
import { getJson, postJson, startTestRouter, waitForServer, type TestRouter } from '../helpers/router.js';

describe('autoscaling', { timeout: 300_000 }, () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({
      env: { MODELDOCK_SCALE_UP_DELAY_MS: '500', MODELDOCK_SCALE_DOWN_DELAY_MS: '3000' },
    });
  });
  after(async () => {
    await t?.cleanup();
  });

  /** The job's servers in `states` now (default: ready). */
  async function readyServers(
    jobId: string,
    states: readonly ServerState[] = ['ready'],
  ): Promise<ServerRecord[]> {
    return t.store.listServers({ jobId, kind: 'job', states });
  }

  /**
   * Resolves once the job has `predicate`-many servers in `states` (default: ready),
   * looking again at each of its servers' state changes (the router's event bus: no
   * polling); rejects after `timeoutMs`.
   */
  function untilReady(
    jobId: string,
    predicate: (ready: number) => boolean,
    timeoutMs: number,
    states: readonly ServerState[] = ['ready'],
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (error: Error | null, count = 0) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        unsubscribe();
        if (error) reject(error);
        else resolve(count);
      };
      const look = () =>
        readyServers(jobId, states).then(
          (ready) => predicate(ready.length) && finish(null, ready.length),
          (error: Error) => finish(error),
        );
      const timer = setTimeout(
        () => finish(new Error(`job ${jobId}: ready replicas never matched within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const unsubscribe = t.router.events.subscribe((event) => {
        if (event.type === 'server' && event.server.jobId === jobId) void look();
      });
      void look();
    });
  }

  async function operations(jobId: string) {
    return (await getJson(`${t.url}/v1/operations?job_id=${jobId}&limit=100`)).body.operations as {
      type: string;
      reason: string;
      status: string;
      duration_ms: number;
    }[];
  }

  it('load drives a job from 1 to 3 replicas and back to 1, with no failed request', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'hot',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 1, max: 3 },
      scale_target: 1,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.servers.length, 1);

    // Eight requests always in flight against a target of one per replica: it wants three.
    const heavy = new InferenceLoad(t.url, allInferPaths('hot'), {
      connections: 8,
      maxRequests: 1e9,
    }).start();
    await untilReady('hot', (n) => n === 3, 60_000);
    const job = await getJson(`${t.url}/v1/jobs/hot`);
    assert.equal(job.body.replicas.desired, 3);
    assert.equal(job.body.replicas.ready, 3);
    await heavy.answered(300); // served by all three for a while
    const heavySamples = await heavy.stop();

    // One request at a time: one replica is enough; the others are drained and removed
    // while that request keeps flowing.
    const light = new InferenceLoad(t.url, allInferPaths('hot'), {
      connections: 1,
      maxRequests: 1e9,
    }).start();
    // Down to one live server: the others drained, stopped and removed.
    await untilReady('hot', (n) => n === 1, 60_000, LIVE_STATES);
    await light.answered(20);
    const lightSamples = await light.stop();

    const failed = [...heavySamples, ...lightSamples].filter((s) => s.status !== 200);
    assert.equal(failed.length, 0, failureDigest(failed));
    const ops = await operations('hot');
    assert.ok(
      ops.filter((o) => o.type === 'DEPLOY_CREATE' && o.reason === 'scale_up' && o.status === 'succeeded')
        .length >= 2,
      'two replicas were added',
    );
    assert.ok(
      ops.filter((o) => o.type === 'TERMINATE' && o.reason === 'scale_down' && o.status === 'succeeded')
        .length >= 2,
      'two replicas were removed',
    );
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /modeldock_scale_events_total\{direction="up",outcome="done"\} [2-9]/);
  });

  it('scales an idle job with min 0 to zero, and its next request is served', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'cold',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 0, max: 2 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const first = created.body.server.server_id as string;
    // Used once, so the job has a route the autoscaler watches; then idle.
    const warm = await postJson(`${t.url}/v2/models/cold/infer`, DIGIT_INFER_BODY);
    assert.equal(warm.status, 200);
    await waitForServer(t.router, first, (s) => s.state === 'terminated', 30_000);
    const idle = await getJson(`${t.url}/v1/jobs/cold`);
    assert.equal(idle.body.state, 'scaled_to_zero');
    assert.equal(idle.body.replicas.desired, 0);
    assert.deepEqual(idle.body.servers, []);

    // The first request after: waits for a replica and is answered.
    const answer = await postJson(`${t.url}/v2/models/cold/infer`, DIGIT_INFER_BODY);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const again = await getJson(`${t.url}/v1/jobs/cold`);
    assert.equal(again.body.state, 'ready');
    assert.equal(again.body.replicas.desired, 1);
    const coldStart = (await operations('cold')).find((o) => o.reason === 'scale_from_zero');
    assert.ok(coldStart, 'the cold start is recorded');
    assert.equal(coldStart.type, 'DEPLOY_LOAD');
    assert.equal(coldStart.status, 'succeeded');
    assert.ok(coldStart.duration_ms > 0);
    const scaledDown = (await operations('cold')).find((o) => o.reason === 'scale_to_zero');
    assert.ok(scaledDown, 'the scale to zero is recorded');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    assert.match(metrics, /modeldock_cold_start_duration_seconds_count\{job="cold"\} 1/);
    // TERMINATE ends it for good: no start on demand.
    const terminated = await postJson(`${t.url}/v1/jobs/cold/terminate`, {});
    assert.equal(terminated.status, 200);
    assert.equal((await postJson(`${t.url}/v2/models/cold/infer`, DIGIT_INFER_BODY)).status, 404);
  });

  it('a scale-up past MODELDOCK_MAX_SERVERS is refused without failing a request', async () => {
    const limited = await startTestRouter({
      env: { MODELDOCK_SCALE_UP_DELAY_MS: '500', MODELDOCK_MAX_SERVERS: '2' },
    });
    try {
      const created = await postJson(`${limited.url}/v1/jobs`, {
        job_id: 'capped',
        model: 'm-131',
        dataset: 'ds-550',
        replicas: { min: 1, max: 3 },
        scale_target: 1,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const load = new InferenceLoad(limited.url, allInferPaths('capped'), {
        connections: 8,
        maxRequests: 1e9,
      }).start();
      // The second replica fits; the third does not: the refusal is counted and the
      // job keeps the two it has.
      const refused = async () =>
        /modeldock_scale_events_total\{direction="up",outcome="refused"\} [1-9]/.test(
          await (await fetch(`${limited.url}/metrics`)).text(),
        );
      while (!(await refused())) await load.answered(100);
      await load.answered(200);
      const samples = await load.stop();
      const failed = samples.filter((s) => s.status !== 200);
      assert.equal(failed.length, 0, failureDigest(failed));
      const job = (await getJson(`${limited.url}/v1/jobs/capped`)).body;
      assert.equal(job.replicas.ready, 2);
      assert.equal(job.replicas.desired, 2, 'the desired count falls back to what the quota allowed');
      const live = await limited.store.listServers({ jobId: 'capped', states: LIVE_STATES });
      assert.equal(live.length, 2);
    } finally {
      await limited.cleanup();
    }
  });

  it('restarts a killed replica while the other keeps serving', async () => {
    const created = await postJson(`${t.url}/v1/jobs`, {
      job_id: 'pair',
      model: 'm-131',
      dataset: 'ds-550',
      replicas: { min: 2, max: 2 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const [, victim] = created.body.servers as { server_id: string; container_name: string }[];
    const load = new InferenceLoad(t.url, allInferPaths('pair'), {
      connections: 4,
      maxRequests: 1e9,
    }).start();
    await load.answered(50);
    const killedAt = performance.now();
    await t.docker.getContainer(victim!.container_name).kill();
    const marked = await waitForServer(t.router, victim!.server_id, (s) => s.state === 'failed', 30_000);
    const markedAt = performance.now();
    assert.match(marked.reason ?? '', /restarting/);
    const restarted = await waitForServer(
      t.router,
      victim!.server_id,
      (s) => s.state === 'ready' && s.restarts === 1,
      60_000,
    );
    assert.equal(restarted.restarts, 1);
    await load.answered(50);
    const samples = await load.stop();
    // Only requests already on their way to the killed worker may fail; every request
    // sent once the router knew was answered by the other replica (or the restarted one).
    const failed = samples.filter((s) => s.status !== 200);
    assert.ok(failed.length <= 4, failureDigest(failed));
    for (const sample of failed) assert.ok(sample.sentAt < markedAt, failureDigest([sample]));
    const during = samples.filter((s) => s.sentAt > markedAt && s.doneAt < performance.now());
    assert.ok(during.length > 0 && during.every((s) => s.status === 200), 'served while it restarted');
    assert.ok(killedAt < markedAt);
    assert.equal((await readyServers('pair')).length, 2);
  });
});
