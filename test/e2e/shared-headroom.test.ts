/**
 * Evicting ahead of need, on the real engine (docs/operations.md#evicting-ahead-of-need):
 * one shared worker under a MODELDOCK_MEMORY_BUDGET of 200 MiB with 40 % of it kept free
 * (MODELDOCK_EVICTION_HEADROOM_PERCENT): the high watermark is 160 MiB, the low one 120.
 * An idle worker measures ~35 MiB in its cgroup and each 16 MiB model about that much, so
 * the eighth load passes the high watermark while every load still finds room of its own
 * (twice its model at its peak): the router then evicts the least recently used idle
 * models in the background, EVICT operations with reason `headroom`, no placement evicts
 * for itself, and an evicted job's next request loads it again and succeeds.
 */
import assert from 'node:assert/strict';
import { chmod, cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBigModel, TEST_MODELS_DIR } from '../helpers/models.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

/** big-16's input width: a 2048 × 2048 FP32 weight matrix. */
const WIDTH = 2048;
const JOBS = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8'];

interface Operation {
  operation_id: string;
  job_id: string;
  reason: string;
  status: string;
  warnings: string[];
}

/** The router's event stream (GET /v1/events): each finished operation, as it finishes. */
class FinishedOperations {
  private readonly seen: Operation[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly controller = new AbortController();

  async open(url: string): Promise<void> {
    const response = await fetch(`${url}/v1/events`, { signal: this.controller.signal });
    assert.equal(response.status, 200);
    void this.read(response.body!).catch(() => undefined);
  }

  /** The first finished operation that `match` takes (seen already or to come), within 30 s. */
  async next(match: (op: Operation) => boolean, what: string): Promise<Operation> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const found = this.seen.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no finished operation within 30 s: ${what}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  close(): void {
    this.controller.abort();
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of body) {
      buffered += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const data = buffered
          .slice(0, end)
          .split('\n')
          .find((line) => line.startsWith('data: '));
        buffered = buffered.slice(end + 2);
        const event = data ? JSON.parse(data.slice('data: '.length)) : undefined;
        if (event?.type !== 'operation') continue;
        this.seen.push(event.operation as Operation);
        for (const wake of this.waiters.splice(0)) wake();
      }
    }
  }
}

async function evictions(t: TestRouter): Promise<Operation[]> {
  const answer = await getJson(`${t.url}/v1/operations?type=EVICT&limit=100`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.operations as Operation[];
}

describe('evicting ahead of need on shared workers', { timeout: 300_000 }, () => {
  let modelsDir: string;
  let t: TestRouter;
  const streams: FinishedOperations[] = [];

  before(async () => {
    await ensureBigModel(16);
    modelsDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-headroom-models-'));
    await chmod(modelsDir, 0o755); // the workers run unprivileged
    await cp(path.join(TEST_MODELS_DIR, 'big-16'), path.join(modelsDir, 'big-16'), { recursive: true });
    t = await startTestRouter({
      env: {
        MODELDOCK_MODELS_DIR: modelsDir,
        MODELDOCK_PLACEMENT: 'shared',
        MODELDOCK_MAX_SERVERS: '1',
        MODELDOCK_WORKER_MEMORY: '400m',
        MODELDOCK_MEMORY_BUDGET: '200m',
        MODELDOCK_EVICTION_HEADROOM_PERCENT: '40',
        MODELDOCK_MIN_RESIDENCY_MS: '0',
        MODELDOCK_SHARED_IDLE_MS: '600000',
      },
    });
  });
  after(async () => {
    for (const stream of streams) stream.close();
    await t?.cleanup();
    await rm(modelsDir, { recursive: true, force: true });
  });

  it('past the high watermark, the least recently used idle models go in the background', async () => {
    const finished = new FinishedOperations();
    streams.push(finished);
    await finished.open(t.url);
    for (const job of JOBS) {
      const answer = await postJson(`${t.url}/v1/jobs`, { job_id: job, model: 'big-16', dataset: 'ds-550' });
      assert.ok(answer.status === 200 || answer.status === 201, JSON.stringify(answer.body));
      assert.equal(answer.body.server.state, 'ready', JSON.stringify(answer.body));
    }
    // The pass runs beside the load that crossed the watermark: its evictions start together
    // (each recorded before its unload), so once one finished, all are listed; wait for each.
    await finished.next((op) => op.reason === 'headroom', 'an EVICT with reason headroom');
    const listed = (await evictions(t)).filter((op) => op.reason === 'headroom');
    const ahead = await Promise.all(
      listed.map((op) => finished.next((done) => done.operation_id === op.operation_id, op.operation_id)),
    );
    const evicted = ahead.map((op) => op.job_id).sort();
    assert.deepEqual(
      evicted,
      JOBS.slice(0, evicted.length),
      'the least recently used jobs went first (created, and so last used, in order)',
    );
    assert.ok(evicted.length < JOBS.length / 2, `at most half of the worker's models: ${evicted.join(', ')}`);
    for (const op of ahead) {
      assert.equal(op.status, 'succeeded');
      assert.match(op.warnings.join(' '), /ahead of need/);
    }
    assert.deepEqual(
      (await evictions(t)).filter((op) => op.reason !== 'headroom'),
      [],
      'no load had to evict for itself',
    );
    for (const job of evicted) {
      const { body } = await getJson(`${t.url}/v1/jobs/${job}`);
      assert.equal(`${body.server.state}:${body.server.reason}`, 'unloaded:evicted');
    }
    assert.equal((await getJson(`${t.url}/v1/jobs/h8`)).body.server.state, 'ready');

    // An evicted job's next request loads it again on demand and is answered.
    const answer = await postJson(`${t.url}/v2/models/${evicted[0]}/infer`, {
      inputs: [{ name: 'x', shape: [1, WIDTH], datatype: 'FP32', data: new Array(WIDTH).fill(0.5) }],
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal((await getJson(`${t.url}/v1/jobs/${evicted[0]}`)).body.server.state, 'ready');
  });
});
