/**
 * Issue #27 (findings 1 and 2): a caller without a key must not be able to make the
 * router or a worker hold memory. Raw HTTP/2 streams announce 16 MB ModelInfer messages
 * and send all but the last byte; each must be refused (UNAUTHENTICATED) and reset before
 * its message completes, and the real process's memory must stay put: the router's
 * (a `modeldock start` child process, its VmRSS) and a worker container's (its rss, its
 * restart count, not OOM-killed).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { connect, unfinishedCall } from '../helpers/grpc-raw.js';
import { freePort } from '../helpers/ports.js';
import { spawnRouter, type RouterProcess } from '../helpers/router-process.js';
import { postJson, startTestRouter, uniqueInstance, type TestRouter } from '../helpers/router.js';

const MB = 1024 * 1024;
const ADMIN = 'admin-key-for-pre-auth-memory-tests';

/** Resident memory of a process, from /proc (bytes). */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** The highest value `sample` gives while `work` runs, sampled every 100 ms. */
async function peakWhile<T>(
  sample: () => Promise<number>,
  work: Promise<T>,
): Promise<{ peak: number; result: T }> {
  let peak = await sample();
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, await sample().catch(() => peak));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    return { peak, result: await work };
  } finally {
    running = false;
    await sampler;
    peak = Math.max(peak, await sample().catch(() => peak));
  }
}

/** `streams` unfinished calls of `announced` bytes spread over `connections` connections. */
async function flood(
  port: number,
  metadata: Record<string, string>,
  connections: number,
  streams: number,
  announced: number,
) {
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    for (let i = 0; i < connections; i++) sessions.push(await connect(port));
    return await Promise.all(
      Array.from({ length: streams }, (_, i) =>
        unfinishedCall(sessions[i % connections]!, metadata, announced, 20_000),
      ),
    );
  } finally {
    for (const session of sessions) session.destroy();
  }
}

describe('gRPC without a key: the router holds nothing', { timeout: 180_000 }, () => {
  let dir: string;
  let router: RouterProcess;
  let grpcPort: number;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-preauth-'));
    grpcPort = await freePort();
    router = await spawnRouter(
      {
        MODELDOCK_INSTANCE: uniqueInstance('pa'),
        MODELDOCK_DATABASE: `sqlite:${path.join(dir, 'modeldock.db')}`,
        MODELDOCK_RUNTIME: 'process',
        MODELDOCK_API_KEY: ADMIN,
        MODELDOCK_GRPC_PORT: String(grpcPort),
        MODELDOCK_LOG_LEVEL: 'info',
      },
      path.join(dir, 'router.log'),
    );
  });
  after(async () => {
    await router?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('64 × 16 MB unfinished ModelInfer streams: each refused before its message, growth ≤ 200 MiB', async () => {
    const pid = router.child.pid!;
    const start = await rssOf(pid);
    const { peak, result: calls } = await peakWhile(() => rssOf(pid), flood(grpcPort, {}, 4, 64, 16 * MB));
    for (const call of calls) {
      assert.equal(call.status, grpc.status.UNAUTHENTICATED);
      assert.ok(call.refusedEarly, `a stream stayed open after ${call.sent} bytes`);
    }
    const growth = peak - start;
    assert.ok(growth <= 200 * MB, `the router grew by ${(growth / MB).toFixed(0)} MiB`);
    // Strangers knocking cost no log line each (log amplification), but are counted.
    const log = await readFile(path.join(dir, 'router.log'), 'utf8');
    assert.doesNotMatch(log, /gRPC call refused/);
    const metrics = await fetch(`${router.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.match(
      await metrics.text(),
      /modeldock_refused_requests_total\{protocol="grpc",reason="unauthenticated"\} 64/,
    );
  });
});

describe('gRPC without the secret: a worker holds nothing', { timeout: 300_000 }, () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_WORKER_MEMORY: '512m' } });
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'pa1', model: 'm-131', dataset: 'ds-550' });
    assert.ok(created.status < 300, JSON.stringify(created.body));
  });
  after(async () => {
    await t?.cleanup();
  });

  it('56 unfinished streams at its message limit: refused, no OOM, no restart, growth ≤ 200 MiB', async () => {
    const server = (await t.store.currentServer('pa1'))!;
    const pool = t.router.workers.pool(server.endpoint!);
    const stats = async () => {
      const response = await pool.request({ method: 'GET', path: '/v2/worker/stats' });
      return (await response.body.json()) as { rss_bytes: number; body_limit_bytes: number };
    };
    const { body_limit_bytes: limit, rss_bytes: start } = await stats();
    const port = Number(new URL(server.endpoint!).port);
    const host = new URL(server.endpoint!).hostname;
    assert.equal(host, '127.0.0.1', 'the worker publishes its port on loopback');
    const { peak, result: calls } = await peakWhile(
      async () => (await stats()).rss_bytes,
      flood(port, {}, 4, 56, limit),
    );
    for (const call of calls) {
      assert.equal(call.status, grpc.status.UNAUTHENTICATED);
      assert.ok(call.refusedEarly, `a stream stayed open after ${call.sent} bytes`);
    }
    const growth = peak - start;
    assert.ok(growth <= 200 * MB, `the worker grew by ${(growth / MB).toFixed(0)} MiB`);
    const details = await t.docker.getContainer(server.workerName).inspect();
    assert.equal(details.Id, server.workerId, 'the same container still serves the job');
    assert.equal((await t.store.currentServer('pa1'))!.restarts, server.restarts);
    assert.equal(details.State.OOMKilled, false);
    assert.equal(details.RestartCount, 0);
    assert.equal(details.State.Running, true);
    const again = await postJson(`${t.url}/v1/jobs/pa1/infer`, {
      inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: Array(64).fill(0) }],
    });
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });
});
