/**
 * The gRPC service's own rules over real sockets, with a real grpc-js client: what
 * ModelInfer sends the worker (the binary tensor extension) and gives back, typed
 * contents as little-endian bytes, statuses for bad requests, and what a deadline, a
 * cancelled call and an absent worker do to the worker's request and the job's route.
 * The "worker" is a plain HTTP server; the lifecycle is reduced to its route lookup.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { GrpcInferenceServer } from '../../src/api/grpc/grpc-server.js';
import { NotFoundError } from '../../src/errors.js';
import { RouteEntry } from '../../src/lifecycle/route-table.js';
import { Metrics } from '../../src/observability/metrics.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { inferenceClient, unaryCall, type InferenceClient } from '../helpers/grpc-client.js';
import { freePort } from '../helpers/ports.js';
import type { Readiness } from '../../src/api/readiness.js';

type Client = InferenceClient;
const call = (client: Client, method: string, request: object, options: grpc.CallOptions = {}) =>
  unaryCall(client, method, request, options);

async function rejectsWith(promise: Promise<unknown>, code: grpc.status, details?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: grpc.ServiceError) => {
    assert.equal(error.code, code, `${grpc.status[error.code]}: ${error.details}`);
    if (details) assert.match(error.details, details);
    return true;
  });
}

describe('gRPC inference service', () => {
  const received: { url: string; headers: http.IncomingHttpHeaders; body: Buffer }[] = [];
  /** Requests to `/v2/models/hold/…` are never answered; this sees them, and their end. */
  let onHeld: ((request: http.IncomingMessage, response: http.ServerResponse) => void) | undefined;
  const worker = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.url!.startsWith('/v2/models/hold/')) return onHeld?.(request, response);
      const body = Buffer.concat(chunks);
      received.push({ url: request.url!, headers: request.headers, body });
      if (request.url!.startsWith('/v2/models/bad/')) {
        response.writeHead(400, { 'content-type': 'application/json' });
        return response.end(JSON.stringify({ error: 'input "x" is wrong' }));
      }
      // Echo: one FP32 output holding the request's input bytes.
      const headerLength = Number(request.headers['inference-header-content-length']);
      const input = body.subarray(headerLength);
      const header = Buffer.from(
        JSON.stringify({
          model_name: 'j1',
          model_version: '1',
          id: 'r1',
          outputs: [
            {
              name: 'y',
              datatype: 'FP32',
              shape: [1, input.length / 4],
              parameters: { binary_data_size: input.length },
            },
          ],
        }),
      );
      response.writeHead(200, {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      });
      response.end(Buffer.concat([header, input]));
    });
  });
  const workers = new WorkerClient();
  /** What the router's readiness probe answers (store and runtime checks). */
  let readiness: Readiness = { ready: true, checks: [] };
  const invalidated: string[] = [];
  const observed: [string, number][] = [];
  let workerUrl: string;
  let server: GrpcInferenceServer;
  let client: Client;

  before(async () => {
    workerUrl = await new Promise<string>((resolve) =>
      worker.listen(0, '127.0.0.1', () =>
        resolve(`http://127.0.0.1:${(worker.address() as AddressInfo).port}`),
      ),
    );
    const gone = `http://127.0.0.1:${await freePort()}`;
    const route = (jobId: string) =>
      new RouteEntry(jobId, 'inf-0001', jobId === 'gone' ? gone : workerUrl, jobId).acquire();
    const started = await GrpcInferenceServer.start(
      {
        lifecycle: {
          // No route is ready at once: every call takes the waiting path, which this stub answers.
          tryAcquireRoute: () => undefined,
          acquireRoute: async (jobId: string) => {
            if (jobId === 'nobody') throw new NotFoundError(`job ${jobId} not found`);
            return route(jobId);
          },
          workerDidNotAnswer: (route: { jobId: string }) => void invalidated.push(route.jobId),
          // The stub worker never answers 404 (model not loaded), so no heal is asked for.
          healLostModel: async () => assert.fail('no heal expected'),
          deployLoad: async () => ({}) as never,
          deployUnload: async () => ({}) as never,
        },
        workers,
        store: { listJobs: async () => [], listServers: async () => [] },
        metrics: {
          observeInference: (jobId: string, status: number) => void observed.push([jobId, status]),
          refusedRequests: new Metrics({ defaultMetrics: false }).refusedRequests,
        },
        logger: pino({ level: 'silent' }),
        version: '0.0.0-test',
        readiness: async () => readiness,
      },
      {
        host: '127.0.0.1',
        port: 0,
        maxMessageBytes: 64 * 1024,
        maxStreamsPerConnection: 100,
        maxCallsPerPeer: 100,
        messageTimeoutMs: 60_000,
      },
    );
    server = started.server;
    client = inferenceClient(`127.0.0.1:${started.port}`);
  });
  after(async () => {
    client?.close();
    await server?.close(100);
    await workers.close();
    await new Promise((resolve) => worker.close(resolve));
  });

  it('sends typed contents to the worker as binary-extension bytes and answers raw_output_contents', async () => {
    received.length = 0;
    const response = await call(client, 'ModelInfer', {
      model_name: 'j1',
      id: 'r1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], contents: { fp32_contents: [1.5, -2, 3] } }],
    });
    const [sent] = received;
    assert.equal(sent!.url, '/v2/models/j1/infer');
    assert.equal(sent!.headers['content-type'], 'application/octet-stream');
    const headerLength = Number(sent!.headers['inference-header-content-length']);
    assert.deepEqual(JSON.parse(sent!.body.subarray(0, headerLength).toString()), {
      id: 'r1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 3], parameters: { binary_data_size: 12 } }],
      parameters: { binary_data_output: true },
    });
    const bytes = sent!.body.subarray(headerLength);
    assert.deepEqual(
      [...new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + 12))],
      [1.5, -2, 3],
    );
    assert.equal(response.model_name, 'j1');
    assert.equal(response.id, 'r1');
    assert.deepEqual(
      response.outputs.map((o: any) => [o.name, o.datatype, o.shape]),
      [['y', 'FP32', [1, 3]]],
    );
    assert.deepEqual(response.raw_output_contents, [bytes]);
  });

  it('passes raw_input_contents unchanged and turns INT64 and BOOL contents into their bytes', async () => {
    received.length = 0;
    const raw = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    await call(client, 'ModelInfer', {
      model_name: 'j1',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2] }],
      raw_input_contents: [raw],
    });
    await call(client, 'ModelInfer', {
      model_name: 'j1',
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2], contents: { int64_contents: [-1, 2 ** 40] } },
        { name: 'b', datatype: 'BOOL', shape: [2], contents: { bool_contents: [true, false] } },
      ],
    });
    const tail = (r: (typeof received)[number]) =>
      r.body.subarray(Number(r.headers['inference-header-content-length']));
    assert.deepEqual(tail(received[0]!), raw);
    const int64 = Buffer.alloc(16);
    int64.writeBigInt64LE(-1n, 0);
    int64.writeBigInt64LE(2n ** 40n, 8);
    assert.deepEqual(tail(received[1]!), Buffer.concat([int64, Buffer.from([1, 0])]));
  });

  it('answers bad requests with INVALID_ARGUMENT or NOT_FOUND, and the worker’s 400 as INVALID_ARGUMENT', async () => {
    received.length = 0;
    const x = { name: 'x', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } };
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: '', inputs: [x] }),
      grpc.status.INVALID_ARGUMENT,
    );
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: 'j1', inputs: [] }),
      grpc.status.INVALID_ARGUMENT,
    );
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: 'j1', inputs: [{ ...x, contents: { int_contents: [1] } }] }),
      grpc.status.INVALID_ARGUMENT,
      /fp32_contents, not int_contents/,
    );
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: 'j1', inputs: [x, x], raw_input_contents: [Buffer.alloc(4)] }),
      grpc.status.INVALID_ARGUMENT,
      /one per input/,
    );
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: 'j1', model_version: '2', inputs: [x] }),
      grpc.status.NOT_FOUND,
      /no version 2/,
    );
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: 'nobody', inputs: [x] }),
      grpc.status.NOT_FOUND,
    );
    assert.equal(received.length, 0, 'none of these reached the worker');
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: 'bad', inputs: [x] }),
      grpc.status.INVALID_ARGUMENT,
      /input "x" is wrong/,
    );
    await rejectsWith(
      call(client, 'ModelInfer', {
        model_name: 'j1',
        inputs: [x],
        raw_input_contents: [Buffer.alloc(70_000)],
      }),
      grpc.status.RESOURCE_EXHAUSTED,
    );
  });

  it(
    'cancels the worker’s request when the deadline passes, and keeps the route',
    { timeout: 10_000 },
    async () => {
      invalidated.length = 0;
      observed.length = 0;
      const ended = new Promise<void>(
        (resolve) => (onHeld = (request, response) => response.once('close', () => resolve())),
      );
      const x = { name: 'x', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } };
      await rejectsWith(
        call(client, 'ModelInfer', { model_name: 'hold', inputs: [x] }, { deadline: Date.now() + 200 }),
        grpc.status.DEADLINE_EXCEEDED,
      );
      await ended; // the worker's side of the request was closed by the router
      assert.deepEqual(invalidated, [], 'the worker did nothing wrong');
      assert.deepEqual(observed, [], 'no worker failure counted');
    },
  );

  it('cancels the worker’s request when the client cancels the call', { timeout: 10_000 }, async () => {
    const atWorker = new Promise<http.ServerResponse>(
      (resolve) => (onHeld = (_request, response) => resolve(response)),
    );
    const x = { name: 'x', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } };
    let pending: grpc.ClientUnaryCall | undefined;
    const answer = new Promise<grpc.ServiceError>((resolve) => {
      pending = client.ModelInfer!({ model_name: 'hold', inputs: [x] }, (error: grpc.ServiceError) =>
        resolve(error),
      );
    });
    const response = await atWorker;
    const closed = new Promise<void>((resolve) => response.once('close', () => resolve()));
    pending!.cancel();
    assert.equal((await answer).code, grpc.status.CANCELLED);
    await closed;
    assert.deepEqual(invalidated, []);
  });

  it('answers an absent worker with UNAVAILABLE, counts a 502 and drops the route', async () => {
    invalidated.length = 0;
    observed.length = 0;
    const x = { name: 'x', datatype: 'FP32', shape: [1], contents: { fp32_contents: [1] } };
    await rejectsWith(
      call(client, 'ModelInfer', { model_name: 'gone', inputs: [x] }),
      grpc.status.UNAVAILABLE,
      /worker of job gone did not answer/,
    );
    assert.deepEqual(invalidated, ['gone']);
    assert.deepEqual(observed, [['gone', 502]]);
  });

  it('answers health, metadata and an unknown repository', async () => {
    assert.deepEqual(await call(client, 'ServerLive', {}), { live: true });
    assert.deepEqual(await call(client, 'ServerReady', {}), { ready: true });
    readiness = { ready: false, checks: [{ name: 'store', ok: false, message: 'database is away' }] };
    assert.deepEqual(
      await call(client, 'ServerReady', {}),
      { ready: false },
      'the router is not ready without its store',
    );
    readiness = { ready: true, checks: [] };
    const metadata = await call(client, 'ServerMetadata', {});
    assert.equal(metadata.name, 'modeldock');
    assert.ok(metadata.extensions.includes('statistics'));
    await rejectsWith(call(client, 'RepositoryIndex', { repository_name: 'other' }), grpc.status.NOT_FOUND);
    await rejectsWith(call(client, 'ModelReady', { name: '../x' }), grpc.status.INVALID_ARGUMENT);
  });
});
