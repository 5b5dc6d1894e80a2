/**
 * The gRPC call guard (src/inference-grpc/call-guard.ts) over real loopback sockets, with
 * raw HTTP/2 streams as an attacker sends them: a call without a key is refused when its
 * metadata arrives and its stream reset before the message is read; a peer past its calls
 * bound gets RESOURCE_EXHAUSTED; a message that does not arrive in time, DEADLINE_EXCEEDED;
 * a connection is told its streams bound. A real grpc-js client with the key still works.
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { UnauthorizedError } from '../../src/errors.js';
import { boundedServerOptions, callGuard, metadataText } from '../../src/inference-grpc/call-guard.js';
import { loadInferenceService } from '../../src/inference-grpc/service-definition.js';
import { connect, unfinishedCall } from '../helpers/grpc-raw.js';

const KEY = 'Bearer a-key-of-sixteen-chars';
const MB = 1024 * 1024;

describe('gRPC call guard', () => {
  let server: grpc.Server;
  let port: number;
  const refused: string[] = [];
  let handled = 0;
  const sessions: http2.ClientHttp2Session[] = [];

  before(async () => {
    server = new grpc.Server({
      ...boundedServerOptions({ maxMessageBytes: 32 * MB, maxStreamsPerConnection: 8 }),
      interceptors: [
        callGuard({
          admit: (metadata, path) => {
            if (path.endsWith('/ServerLive')) return;
            if (metadataText(metadata, 'authorization') !== KEY) throw new UnauthorizedError('no key');
          },
          maxCallsPerPeer: 4,
          messageTimeoutMs: 500,
          onRefused: (reason) => void refused.push(reason),
        }),
      ],
    });
    server.addService(loadInferenceService(), {
      ServerLive: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, { live: true }),
      ModelInfer: (_call: unknown, callback: grpc.sendUnaryData<object>) => {
        handled += 1;
        callback(null, { model_name: 'm' });
      },
    });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
  });
  after(async () => {
    for (const session of sessions) session.destroy();
    server?.forceShutdown();
  });

  const session = async () => {
    const opened = await connect(port);
    sessions.push(opened);
    return opened;
  };

  it('refuses 8 unfinished 16 MB calls without a key at their metadata, and resets each stream', async () => {
    const before = refused.length;
    const calls = await Promise.all(
      Array.from({ length: 8 }, async () => unfinishedCall(await session(), {}, 16 * MB, 10_000)),
    );
    for (const call of calls) {
      assert.equal(call.status, grpc.status.UNAUTHENTICATED);
      assert.ok(call.refusedEarly, `the stream stayed open after ${call.sent} bytes`);
      // The server read at most a flow-control window or so: nowhere near the message.
      assert.ok(call.sent < 2 * MB, `${call.sent} bytes sent before the reset`);
    }
    assert.equal(handled, 0);
    assert.deepEqual(refused.slice(before), Array(8).fill('unauthenticated'));
  });

  it('tells each connection its streams bound (SETTINGS_MAX_CONCURRENT_STREAMS)', async () => {
    const opened = await session();
    await new Promise<void>((resolve) =>
      opened.remoteSettings.maxConcurrentStreams === 8
        ? resolve()
        : opened.once('remoteSettings', () => resolve()),
    );
    assert.equal(opened.remoteSettings.maxConcurrentStreams, 8);
  });

  it('refuses a peer past its calls bound, and a message that does not arrive in time', async () => {
    const opened = await session();
    const before = refused.length;
    const slow = Array.from({ length: 5 }, () => unfinishedCall(opened, { authorization: KEY }, MB, 10_000));
    const calls = await Promise.all(slow);
    const statuses = calls.map((call) => call.status).sort();
    // Four admitted, then cut when their message did not come in 500 ms; the fifth refused at once.
    assert.deepEqual(statuses, [
      grpc.status.DEADLINE_EXCEEDED,
      grpc.status.DEADLINE_EXCEEDED,
      grpc.status.DEADLINE_EXCEEDED,
      grpc.status.DEADLINE_EXCEEDED,
      grpc.status.RESOURCE_EXHAUSTED,
    ]);
    for (const call of calls) assert.ok(call.refusedEarly);
    assert.deepEqual(refused.slice(before).sort(), ['busy', 'slow', 'slow', 'slow', 'slow']);
    assert.equal(handled, 0);
  });

  it('lets a client with the key through, and health without one', async () => {
    const Client = grpc.makeGenericClientConstructor({}, 'unused');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const unary = (path: string, metadata: grpc.Metadata) =>
      new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          path,
          (value: Buffer) => value,
          (value: Buffer) => value,
          Buffer.alloc(0),
          metadata,
          (error, value) => (error ? reject(error) : resolve(value!)),
        ),
      );
    try {
      const withKey = new grpc.Metadata();
      withKey.set('authorization', KEY);
      await unary('/inference.GRPCInferenceService/ModelInfer', withKey);
      assert.equal(handled, 1);
      await unary('/inference.GRPCInferenceService/ServerLive', new grpc.Metadata());
      await assert.rejects(unary('/inference.GRPCInferenceService/ModelInfer', new grpc.Metadata()), {
        code: grpc.status.UNAUTHENTICATED,
      });
      // Every call ended, so the peer's count is back to zero: four more fit again.
      const opened = await session();
      const calls = await Promise.all(
        Array.from({ length: 4 }, () => unfinishedCall(opened, { authorization: KEY }, MB, 10_000)),
      );
      assert.deepEqual(
        calls.map((call) => call.status),
        Array(4).fill(grpc.status.DEADLINE_EXCEEDED),
      );
    } finally {
      client.close();
    }
  });
});
