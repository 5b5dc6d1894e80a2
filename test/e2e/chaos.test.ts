/**
 * The chaos run that found issue #28, bounded and seeded so it runs in CI and a failure
 * can be replayed: a real router process and its workers on the real Docker engine;
 * lifecycle operations from two threads and inference from two, on a handful of jobs;
 * and every few seconds a fault: `docker kill`, `docker stop`, `docker rm -f` or
 * `docker pause` of a worker, or SIGKILL of the router (started again on the same
 * store). Afterwards, once the faults stop and the reconciler has converged:
 *
 * - records agree with the engine: no server left mid-operation, every `ready` or
 *   `unloaded` server's container runs, no operation left `running`;
 * - no orphan container and no duplicate (one live server and one container per job);
 * - every acknowledged operation (a 200 with an operation id) is recorded as succeeded;
 * - every answer the clients got is one docs/operations.md documents for what happened
 *   (a 502 only on a job whose worker a fault hit shortly before, a cut connection only
 *   when the router was killed, never a 500);
 * - every job serves again (a failed one after DEPLOY_LOAD), and the log said what it
 *   handled (worker deaths at warn or error).
 *
 * MODELDOCK_CHAOS_SEED replays a run; MODELDOCK_CHAOS_SECONDS sets how long the faults
 * go on (60 s by default: CI's budget is the whole suite's).
 */
import assert from 'node:assert/strict';
import Dockerode from 'dockerode';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/runtime/runtime.js';
import { DIGITS } from '../helpers/fixtures.js';
import {
  getJson,
  instanceContainers,
  postJson,
  removeInstanceContainers,
  uniqueInstance,
} from '../helpers/router.js';
import { ownRouterEnv, spawnRouter, type RouterProcess } from '../helpers/router-process.js';
import { SeededRandom } from '../helpers/seeded-random.js';

const SEED = Number(process.env.MODELDOCK_CHAOS_SEED ?? 28);
const CHAOS_MS = Number(process.env.MODELDOCK_CHAOS_SECONDS ?? 60) * 1000;
const JOBS = ['c0', 'c1', 'c2', 'c3', 'c4'];
const OPERATIONS = ['DEPLOY_CREATE', 'DEPLOY_LOAD', 'DEPLOY_UNLOAD', 'TERMINATE'] as const;
const FAULTS = ['kill', 'stop', 'rm', 'pause', 'router'] as const;
type Fault = (typeof FAULTS)[number];
/** A request a fault could have cut may be answered this long after it (a paused worker, a slow restart). */
const FAULT_WINDOW_MS = 30_000;

const ONE_DIGIT = {
  inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
};

interface Answer {
  kind: 'infer' | 'operation';
  what: string;
  jobId: string;
  /** HTTP status, or 'cut' when the connection failed. */
  status: number | 'cut';
  code?: string;
  message?: string;
  startedAt: number;
  endedAt: number;
  /** Which router (counted from 0) the request went to. */
  epoch: number;
  /** The router was being killed or started again when the request was sent. */
  routerWasDown: boolean;
}

const docker = new Dockerode();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe(`chaos run (seed ${SEED}, ${CHAOS_MS / 1000} s of faults)`, { timeout: 900_000 }, () => {
  const instance = uniqueInstance('chaos');
  let dataDir: string;
  let env: Record<string, string>;
  let router: RouterProcess;
  /** Bumped on every router kill; a request of an earlier epoch may have been cut. */
  let epoch = 0;
  let routerDown = false;
  const answers: Answer[] = [];
  const acknowledged: string[] = [];
  const faults: Array<{ fault: Fault; jobId?: string; at: number; epoch: number }> = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-chaos-'));
    env = {
      ...ownRouterEnv(instance, dataDir),
      MODELDOCK_RECONCILE_INTERVAL_MS: '2000',
      MODELDOCK_RESTART_BACKOFF_MS: '200',
      MODELDOCK_LOAD_WAIT_MS: '30000',
      MODELDOCK_LOG_LEVEL: 'info',
    };
    router = await spawnRouter(env, path.join(dataDir, 'router.log'));
  });

  after(async () => {
    await router?.kill();
    // A paused container cannot be removed until it is unpaused by force; remove does both.
    await removeInstanceContainers(docker, instance);
    if (!process.env.MODELDOCK_KEEP_TEST_DATA) await rm(dataDir, { recursive: true, force: true });
  });

  /** Send one request and classify its answer (never throws). */
  async function send(
    kind: Answer['kind'],
    what: string,
    jobId: string,
    call: (url: string) => Promise<{ status: number; body: any }>,
  ): Promise<{ status: number | 'cut'; body?: any }> {
    const started = { at: Date.now(), epoch, routerWasDown: routerDown };
    let status: number | 'cut';
    let body: any;
    try {
      ({ status, body } = await call(router.url));
    } catch {
      status = 'cut';
    }
    const error = body?.error;
    answers.push({
      kind,
      what,
      jobId,
      status,
      ...(typeof error === 'object' && error ? { code: error.code, message: error.message } : {}),
      ...(typeof error === 'string' ? { message: error } : {}),
      startedAt: started.at,
      endedAt: Date.now(),
      epoch: started.epoch,
      routerWasDown: started.routerWasDown,
    });
    return { status, body };
  }

  async function operationThread(random: SeededRandom, until: number) {
    while (Date.now() < until) {
      const jobId = random.pick(JOBS);
      const operation = random.pick(OPERATIONS);
      const { status, body } = await send('operation', operation, jobId, (url) =>
        postJson(`${url}/inference_router/`, {
          job_id: jobId,
          model: 'm-131',
          dataset: 'ds-550',
          operation_type: operation,
        }),
      );
      if (status === 200) acknowledged.push(body.operation_id);
      await sleep(random.int(100, 1_500));
    }
  }

  async function inferenceThread(random: SeededRandom, until: number) {
    while (Date.now() < until) {
      const jobId = random.pick(JOBS);
      await send('infer', 'infer', jobId, (url) => postJson(`${url}/v2/models/${jobId}/infer`, ONE_DIGIT));
      await sleep(random.int(0, 200));
    }
  }

  async function faultThread(random: SeededRandom, until: number) {
    // The kinds take turns (every one comes up in a short run); when and whom they hit is drawn.
    for (let turn = random.int(0, FAULTS.length); Date.now() < until; turn++) {
      await sleep(random.int(2_500, 5_000));
      const fault = FAULTS[turn % FAULTS.length]!;
      if (fault === 'router') {
        faults.push({ fault, at: Date.now(), epoch });
        routerDown = true;
        epoch++;
        await router.kill('SIGKILL');
        router = await spawnRouter(env, path.join(dataDir, 'router.log'));
        routerDown = false;
        continue;
      }
      const jobId = random.pick(JOBS);
      const job = await getJson(`${router.url}/v1/jobs/${jobId}`).catch(() => undefined);
      const containerId: string | undefined = job?.body?.server?.container_id ?? undefined;
      if (!containerId || job?.body?.server?.state === 'terminated') continue;
      faults.push({ fault, jobId, at: Date.now(), epoch });
      const container = docker.getContainer(containerId);
      // The engine may refuse (already gone, not running): that is chaos too.
      const ignore = () => undefined;
      if (fault === 'kill') await container.kill({ signal: 'SIGKILL' }).catch(ignore);
      if (fault === 'stop') await container.stop({ t: 2 }).catch(ignore);
      if (fault === 'rm') await container.remove({ force: true }).catch(ignore);
      if (fault === 'pause') {
        await container.pause().catch(ignore);
        await sleep(random.int(500, 3_000));
        await container.unpause().catch(ignore);
      }
    }
  }

  /** Whether a fault hit the job's worker (or the router) shortly before or while the request ran. */
  function faultNear(answer: Answer, kinds: readonly Fault[]): boolean {
    return faults.some(
      (f) =>
        kinds.includes(f.fault) &&
        (f.jobId === undefined || f.jobId === answer.jobId) &&
        f.at <= answer.endedAt &&
        f.at >= answer.startedAt - FAULT_WINDOW_MS,
    );
  }

  /** Why an answer is not one the docs promise for what happened, or undefined if it is. */
  function undocumented(answer: Answer): string | undefined {
    const { status } = answer;
    if (status === 200) return undefined;
    if (status === 'cut') {
      // Connection refused or closed before any answer: the router was stopped or restarting.
      return answer.routerWasDown || answer.epoch < epoch
        ? undefined
        : 'a cut connection while the router ran';
    }
    if (status === 404 && answer.code === 'not_found') return undefined; // unknown or terminated job
    if (status === 404 && answer.kind === 'infer') return undefined; // the protocol's form of not_found
    if (status === 409) {
      // Inference: the job's server failed and is not being restarted. An operation: it
      // does not apply to the job's state (DEPLOY_UNLOAD of a failed server, …).
      return answer.kind === 'operation' || /has failed/.test(answer.message ?? '')
        ? undefined
        : `409 on inference that is not a failed server: ${answer.message}`;
    }
    if (status === 503) return undefined; // not_ready after the load wait; engine or store away
    if (status === 502 || status === 504) {
      // The job's worker died or stopped answering while it had the request.
      return faultNear(answer, ['kill', 'stop', 'rm', 'pause', 'router'])
        ? undefined
        : `${status} with no fault on ${answer.jobId}'s worker near it`;
    }
    return `status ${status}`;
  }

  it('holds every invariant through worker and router faults', async () => {
    const random = new SeededRandom(SEED);
    const until = Date.now() + CHAOS_MS;
    await Promise.all([
      operationThread(new SeededRandom(random.int(0, 2 ** 31)), until),
      operationThread(new SeededRandom(random.int(0, 2 ** 31)), until),
      inferenceThread(new SeededRandom(random.int(0, 2 ** 31)), until),
      inferenceThread(new SeededRandom(random.int(0, 2 ** 31)), until),
      faultThread(new SeededRandom(random.int(0, 2 ** 31)), until),
    ]);
    const tally = answers.reduce<Record<string, number>>((counts, a) => {
      const key = `${a.kind} ${a.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
      return counts;
    }, {});
    console.log(`# chaos: ${faults.length} faults (${faults.map((f) => f.fault).join(' ')})`);
    console.log(`# chaos answers: ${JSON.stringify(tally)}`);
    // What the errors said, for whoever reads a run (ids and numbers blurred into one line each).
    const said = new Set(
      answers
        .filter((a) => typeof a.status === 'number' && a.status >= 409)
        .map((a) => `${a.kind} ${a.status} ${(a.message ?? '').replace(/\d+/g, 'N').slice(0, 160)}`),
    );
    for (const line of said) console.log(`# chaos error: ${line}`);

    // Every answer is one the docs promise for what happened.
    const wrong = answers
      .map((a) => ({ a, why: undocumented(a) }))
      .filter((x) => x.why !== undefined)
      .map(
        ({ a, why }) =>
          `${a.kind} ${a.what} ${a.jobId} -> ${a.status} ${a.code ?? ''} ${a.message ?? ''}: ${why}`,
      );
    assert.deepEqual(wrong, [], 'answers outside what docs/operations.md documents');
    assert.ok(
      answers.some((a) => a.kind === 'infer' && a.status === 200),
      'inference was served',
    );
    assert.ok(acknowledged.length > 0, 'operations were acknowledged');

    // Faults are over: the reconciler converges (restarts finish, interrupted operations close).
    const url = router.url;
    const deadline = Date.now() + 120_000;
    let servers: any[] = [];
    for (;;) {
      await postJson(`${url}/v1/reconcile`, {});
      servers = (await getJson(`${url}/v1/servers`)).body.servers;
      const settling = servers.filter(
        (s) =>
          ['creating', 'loading', 'unloading', 'terminating'].includes(s.state) ||
          (s.state === 'failed' && /restarting/.test(s.reason ?? '')),
      );
      if (settling.length === 0) break;
      assert.ok(Date.now() < deadline, `not converged: ${JSON.stringify(settling)}`);
      await sleep(1_000);
    }

    // Records agree with the engine; no orphan, no duplicate, nothing left running.
    const running = (await getJson(`${url}/v1/operations?status=running`)).body.operations;
    assert.deepEqual(running, [], 'operations left running');
    const containers = await instanceContainers(docker, instance);
    const byName = new Map(containers.map((c) => [c.Names[0]!.replace(/^\//, ''), c]));
    const liveJobs = new Set<string>();
    for (const s of servers) {
      const container = byName.get(s.container_name);
      if (s.state === 'terminated') {
        assert.equal(container, undefined, `terminated ${s.server_id} still has a container`);
        continue;
      }
      assert.ok(!liveJobs.has(s.job_id), `two live servers for job ${s.job_id}`);
      liveJobs.add(s.job_id);
      if (s.state === 'ready' || s.state === 'unloaded') {
        assert.equal(
          container?.State,
          'running',
          `${s.server_id} is ${s.state}, its container ${container?.State}`,
        );
      }
    }
    const known = new Set(servers.filter((s) => s.state !== 'terminated').map((s) => s.container_name));
    for (const name of byName.keys()) assert.ok(known.has(name), `orphan container ${name}`);
    const perJob = new Map<string, number>();
    for (const c of containers)
      perJob.set(c.Labels[LABELS.job]!, (perJob.get(c.Labels[LABELS.job]!) ?? 0) + 1);
    for (const [jobId, count] of perJob) assert.equal(count, 1, `${count} containers for job ${jobId}`);

    // Every acknowledged operation is in the record, as it was answered.
    for (const operationId of acknowledged) {
      const record = await getJson(`${url}/v1/operations/${operationId}`);
      assert.equal(record.status, 200, `acknowledged operation ${operationId} is not recorded`);
      assert.equal(record.body.status, 'succeeded', `${operationId}: ${JSON.stringify(record.body)}`);
    }

    // Faults heal when the fault goes: every live job serves again (a failed one after DEPLOY_LOAD).
    for (const s of servers.filter((s) => s.state !== 'terminated')) {
      if (s.state === 'failed') {
        const loaded = await postJson(`${url}/v1/jobs/${s.job_id}/load`, {});
        assert.equal(loaded.status, 200, `${s.job_id}: ${JSON.stringify(loaded.body)}`);
      }
      const answer = await postJson(`${url}/v2/models/${s.job_id}/infer`, ONE_DIGIT);
      assert.equal(answer.status, 200, `${s.job_id}: ${JSON.stringify(answer.body)}`);
    }

    // The log said what the router handled: each worker fault that hit a live worker
    // shows as a death (warn) or a limit reached (error).
    const workerFaults = faults.filter((f) => f.fault === 'kill' || f.fault === 'rm' || f.fault === 'stop');
    if (workerFaults.length > 0) {
      const lines = (await readFile(path.join(dataDir, 'router.log'), 'utf8'))
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { level: number; msg: string; jobId?: string; serverId?: string });
      const deaths = lines.filter((l) => l.level >= 40 && /^worker died/.test(l.msg));
      assert.ok(deaths.length > 0, 'worker deaths reach the log at warn or error');
      for (const line of deaths) assert.ok(line.jobId && line.serverId, JSON.stringify(line));
    }
  });
});
