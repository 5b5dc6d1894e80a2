/**
 * Issue #27: a caller without a key must not be able to make the router or a worker hold
 * memory, nor one with a key more than a bounded share. Findings 1 and 2 (gRPC): Raw HTTP/2 streams announce 16 MB ModelInfer messages
 * and send all but the last byte; each must be refused (UNAUTHENTICATED) and reset before
 * its message completes, and the real process's memory must stay put: the router's
 * (a `modeldock start` child process, its VmRSS) and a worker container's (its rss, its
 * restart count, not OOM-killed). Findings 3 and 4 (HTTP): nested JSON bodies with the
 * infer key leave the router's memory bounded and an admin call answering; chunked bodies
 * are counted by the worker as they arrive, so the excess is refused (503, Retry-After).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import type http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import Dockerode from 'dockerode';
import { connect, unfinishedCall } from '../helpers/grpc-raw.js';
import { freePort } from '../helpers/ports.js';
import { ownRouterEnv, spawnRouter, type RouterProcess } from '../helpers/router-process.js';
import {
  postJson,
  removeInstanceContainers,
  startTestRouter,
  uniqueInstance,
  type TestRouter,
} from '../helpers/router.js';

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
        ...ownRouterEnv(uniqueInstance('pa'), dir),
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

/** `{"inputs":[[0],[0],…]}` of `size` bytes: the JSON whose parse costs most per byte. */
function nestedBody(size: number): Buffer {
  const head = '{"inputs":[';
  const count = Math.floor((size - head.length - 5) / 4);
  return Buffer.from(`${head}${'[0],'.repeat(count)}[0]]}`);
}

/** A raw HTTP/1.1 request over its own socket, its body sent in `chunks` with a pause after the first. */
function chunkedPost(
  url: string,
  path: string,
  headers: Record<string, string>,
  chunks: Buffer[],
  firstSent: Promise<void>,
  onFirstSent: () => void,
): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = httpRequest({
      host: target.hostname,
      port: target.port,
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', ...headers },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () =>
        resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'] as string }),
      );
    });
    request.on('error', reject);
    request.write(chunks[0]!, () => {
      onFirstSent();
      void firstSent.then(() => {
        for (const chunk of chunks.slice(1)) request.write(chunk);
        request.end();
      });
    });
  });
}

describe('HTTP bodies: bounded bytes in flight, counted as they arrive', { timeout: 300_000 }, () => {
  const INFER = 'infer-key-for-pre-auth-memory-tests';
  let dir: string;
  let router: RouterProcess;
  const instance = uniqueInstance('pb');
  const admin = { authorization: `Bearer ${ADMIN}` };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-preauth-'));
    router = await spawnRouter(
      {
        ...ownRouterEnv(instance, dir),
        MODELDOCK_API_KEY: ADMIN,
        MODELDOCK_INFER_KEY: INFER,
        MODELDOCK_WORKER_MEMORY: '1g',
        MODELDOCK_LOG_LEVEL: 'info',
      },
      path.join(dir, 'router.log'),
    );
    const created = await postJson(
      `${router.url}/v1/jobs`,
      { job_id: 'pb1', model: 'm-131', dataset: 'ds-550' },
      admin,
    );
    assert.ok(created.status < 300, JSON.stringify(created.body));
  });
  after(async () => {
    await router?.kill('SIGTERM');
    const docker = new Dockerode();
    await removeInstanceContainers(docker, instance);
    await rm(dir, { recursive: true, force: true });
  });

  it('4 × 16 MB nested bodies on /v1/jobs/{job}/infer: growth ≤ 400 MiB, an admin call answers meanwhile', async (ctx) => {
    const pid = router.child.pid!;
    const body = nestedBody(16 * MB - 64);
    const start = await rssOf(pid);
    let slowestAdmin = 0;
    let adminCalls = 0;
    let flooding = true;
    const adminProbe = (async () => {
      while (flooding) {
        const started = performance.now();
        const limits = await fetch(`${router.url}/v1/limits`, { headers: admin });
        assert.equal(limits.status, 200);
        await limits.arrayBuffer();
        slowestAdmin = Math.max(slowestAdmin, performance.now() - started);
        adminCalls += 1;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const posts = Array.from({ length: 4 }, () =>
      fetch(`${router.url}/v1/jobs/pb1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${INFER}` },
        body,
      }).then(async (response) => ({ status: response.status, text: await response.text() })),
    );
    const { peak, result: answers } = await peakWhile(() => rssOf(pid), Promise.all(posts));
    flooding = false;
    await adminProbe;
    // Each is answered: the worker refuses the nested tensor (400), or it or the router is
    // busy (429, Retry-After); none is a worker failure.
    for (const answer of answers) assert.ok([400, 429].includes(answer.status), JSON.stringify(answer));
    const growth = peak - start;
    ctx.diagnostic(
      `router growth ${(growth / MB).toFixed(0)} MiB; slowest admin call ${slowestAdmin.toFixed(0)} ms`,
    );
    assert.ok(growth <= 400 * MB, `the router grew by ${(growth / MB).toFixed(0)} MiB`);
    assert.ok(adminCalls >= 1);
    // Every body's charge was given back.
    const limits = (await (await fetch(`${router.url}/v1/limits`, { headers: admin })).json()) as any;
    assert.equal(limits.inference_bytes_in_flight, 0);
    assert.equal(limits.request_memory, 64 * MB);
    // The target is 1 s on a quiet machine (it took 3.5 s before); this one is shared.
    assert.ok(slowestAdmin < 2_000, `GET /v1/limits took ${slowestAdmin.toFixed(0)} ms`);
  });

  it('8 chunked 16 MB bodies at once through /v2: the worker counts them as they arrive and refuses the excess', async () => {
    const body = nestedBody(16 * MB - 64);
    const chunks = Array.from({ length: 16 }, (_, i) => body.subarray(i * MB, (i + 1) * MB)).filter(
      (chunk) => chunk.length > 0,
    );
    let release!: () => void;
    const allStarted = new Promise<void>((resolve) => (release = resolve));
    let started = 0;
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        chunkedPost(
          router.url,
          '/v2/models/pb1/infer',
          { authorization: `Bearer ${INFER}` },
          chunks,
          allStarted,
          () => {
            started += 1;
            if (started === 8) release();
          },
        ),
      ),
    );
    const busy = answers.filter((answer) => answer.status === 503);
    // The worker's body limit (1 GiB worker: ~22 MB) holds one 16 MB body at a time.
    assert.ok(busy.length >= 6, JSON.stringify(answers));
    for (const answer of busy) assert.equal(answer.retryAfter, '1');
    for (const answer of answers) assert.ok([400, 503].includes(answer.status), JSON.stringify(answers));
  });
});
