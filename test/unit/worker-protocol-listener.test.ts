/**
 * The worker's one port for HTTP/1.1 and gRPC (src/worker/protocol-listener.ts): which
 * protocol a connection's first bytes mean, and, over real sockets, that an HTTP/1.1
 * client (undici, keep-alive) and a gRPC client (grpc-js) each reach their own server on
 * the same port, even when their first bytes arrive a few at a time.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Pool } from 'undici';
import { loadInferenceService } from '../../src/inference-grpc/service-definition.js';
import { protocolOf, serveHttp2Alongside } from '../../src/worker/protocol-listener.js';

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

describe('protocolOf', () => {
  it('tells HTTP/2 by its whole preface and HTTP/1.1 by the first byte that differs', () => {
    assert.equal(protocolOf(Buffer.from(PREFACE)), 'http2');
    assert.equal(protocolOf(Buffer.from(PREFACE + '\x00\x00\x12\x04')), 'http2');
    for (let length = 1; length < PREFACE.length; length++) {
      assert.equal(protocolOf(Buffer.from(PREFACE.slice(0, length))), undefined, `${length} bytes`);
    }
    for (const start of [
      'GET / HTTP/1.1\r\n',
      'POST /v2/models/a/infer HTTP/1.1\r\n',
      'PUT ',
      'PATCH',
      'PRX',
    ]) {
      assert.equal(protocolOf(Buffer.from(start)), 'http1', start);
    }
    assert.equal(protocolOf(Buffer.from('PRI * HTTP/1.1\r\n')), 'http1');
  });
});

describe('one port for HTTP/1.1 and gRPC', () => {
  let httpServer: http.Server;
  let grpcServer: grpc.Server;
  let port: number;
  before(async () => {
    httpServer = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () =>
        response.end(`http1 ${request.method} ${request.url} ${Buffer.concat(chunks)}`),
      );
    });
    grpcServer = new grpc.Server();
    grpcServer.addService(loadInferenceService(), {
      ServerLive: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, { live: true }),
    });
    const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    serveHttp2Alongside(httpServer, (socket) => injector.injectConnection(socket));
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    port = (httpServer.address() as AddressInfo).port;
  });
  after(async () => {
    grpcServer.forceShutdown();
    httpServer.closeAllConnections();
    await new Promise((resolve) => httpServer.close(resolve));
  });

  const live = () => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = (): Promise<Buffer> =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(
          '/inference.GRPCInferenceService/ServerLive',
          () => Buffer.alloc(0),
          (bytes: Buffer) => bytes,
          {},
          (error, value) => (error ? reject(error) : resolve(value!)),
        ),
      );
    return { call, close: () => client.close() };
  };

  it('serves both at once, each connection kept alive by its own server', async () => {
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 });
    const grpcClient = live();
    try {
      for (let i = 0; i < 3; i++) {
        const [answer, bytes] = await Promise.all([
          pool.request({ method: 'POST', path: `/echo/${i}`, body: 'hello' }).then((r) => r.body.text()),
          grpcClient.call(),
        ]);
        assert.equal(answer, `http1 POST /echo/${i} hello`);
        // ServerLiveResponse{live: true}: field 1, varint 1.
        assert.deepEqual([...bytes], [0x08, 0x01]);
      }
    } finally {
      await pool.close();
      grpcClient.close();
    }
  });

  it('waits for first bytes that arrive a few at a time, and loses none of them', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const request = 'POST /split HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc';
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const ended = new Promise((resolve) => socket.once('end', resolve));
    // 'P', then 'OS': a beginning of the HTTP/2 preface until the 'O'.
    for (const part of [request.slice(0, 1), request.slice(1, 3), request.slice(3)]) {
      socket.write(part);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await ended;
    assert.match(Buffer.concat(received).toString(), /\r\n\r\nhttp1 POST \/split abc$/);
  });

  it('closes a connection that closes before it says anything, without handing it on', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.end();
    await new Promise((resolve) => socket.once('close', resolve));
    // Both servers still serve.
    const grpcClient = live();
    try {
      assert.deepEqual([...(await grpcClient.call())], [0x08, 0x01]);
    } finally {
      grpcClient.close();
    }
  });
});
