/**
 * Cancelled requests leave the batching queue, over real sockets: an HTTP client that
 * hangs up and a gRPC call whose deadline passes, both waiting in the queue of a model
 * that holds an idle request for company up to a second (a fixed delay), are gone from
 * the queue well before that second ends, and the model never runs them.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { buildWorkerApp, type WorkerApp } from '../../src/worker/app.js';
import { workerGrpcServer } from '../../src/worker/grpc-service.js';
import { serveHttp2Alongside } from '../../src/worker/protocol-listener.js';
import { DIGITS } from '../helpers/fixtures.js';
import { inferenceClient, unaryCall, type InferenceClient } from '../helpers/grpc-client.js';
import { MODELS_DIR } from '../helpers/paths.js';

const HOLD_MS = 1000; // the longest queue delay model.json allows (1 s)

describe('worker: cancelled requests leave the batching queue', () => {
  let worker: WorkerApp;
  let root: string;
  let url: string;
  let client: InferenceClient;
  let grpcServer: grpc.Server;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'modeldock-batching-cancel-'));
    await mkdir(path.join(root, 'held'));
    await copyFile(path.join(MODELS_DIR, 'm-131/model.onnx'), path.join(root, 'held/model.onnx'));
    await writeFile(
      path.join(root, 'held/model.json'),
      JSON.stringify({
        max_batch_size: 4,
        dynamic_batching: { max_queue_delay_microseconds: HOLD_MS * 1000, adaptive_delay: false },
      }),
    );
    worker = await buildWorkerApp({ modelsDir: root, datasetsDir: root });
    const loaded = await worker.app.inject({ method: 'POST', url: '/v2/repository/models/held/load' });
    assert.equal(loaded.statusCode, 200, loaded.body);
    const grpcSide = workerGrpcServer({ app: worker.app, infer: worker.infer, maxMessageBytes: 1 << 20 });
    grpcServer = grpcSide.server;
    serveHttp2Alongside(worker.app.server, (socket) => grpcSide.injector.injectConnection(socket));
    await worker.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = worker.app.server.address() as AddressInfo;
    url = `http://127.0.0.1:${port}`;
    client = inferenceClient(`127.0.0.1:${port}`);
    // Connected before any call, so a deadline measures the queue, not the channel's set-up
    // (seen taking 0.37 s on a loaded machine).
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + 30_000, (error) => (error ? reject(error) : resolve())),
    );
  });
  after(async () => {
    client?.close();
    grpcServer?.forceShutdown();
    await worker?.app.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const queued = async () =>
    (await worker.app.inject({ method: 'GET', url: '/v2/worker/stats' })).json().queued.held as number;
  const ran = async () =>
    (await worker.app.inject({ method: 'GET', url: '/v2/models/held/stats' })).json().model_stats[0]
      .inference_count as number;
  /** Resolves once the queue holds `count` requests (checked every 5 ms). */
  const queueReaches = async (count: number) => {
    while ((await queued()) !== count) await new Promise((resolve) => setTimeout(resolve, 5));
    return performance.now();
  };
  const pixels = DIGITS[0]!.inputs.pixels;

  it('an HTTP client that hangs up takes its request out of the queue', async () => {
    const before = await ran();
    const hangUp = new AbortController();
    const answer = request(`${url}/v2/models/held/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: pixels }] }),
      signal: hangUp.signal,
    });
    const queuedAt = await queueReaches(1);
    hangUp.abort();
    await assert.rejects(answer);
    await queueReaches(0);
    assert.ok(performance.now() - queuedAt < HOLD_MS, 'it left before its wait would have ended');
    // Past the wait: had it stayed, it would have run by now.
    await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
    assert.equal(await ran(), before, 'the model never ran it');
  });

  it('a gRPC call whose deadline passes takes its request out of the queue', async () => {
    const before = await ran();
    const call = unaryCall(
      client,
      'ModelInfer',
      {
        model_name: 'held',
        inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], contents: { fp32_contents: pixels } }],
      },
      { deadline: Date.now() + 500 },
    );
    const queuedAt = await queueReaches(1);
    await assert.rejects(call, (error: grpc.ServiceError) => error.code === grpc.status.DEADLINE_EXCEEDED);
    await queueReaches(0);
    assert.ok(performance.now() - queuedAt < HOLD_MS, 'it left before its wait would have ended');
    await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
    assert.equal(await ran(), before, 'the model never ran it');
  });
});
