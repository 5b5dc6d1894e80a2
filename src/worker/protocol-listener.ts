/**
 * The worker's one port for its two APIs: HTTP/1.1 (the Fastify app) and gRPC (HTTP/2
 * with prior knowledge, grpc-js). A gRPC client opens its connection with HTTP/2's fixed
 * connection preface (RFC 9113 §3.4); anything else is HTTP/1.1. Each new connection's
 * first bytes are read until they tell which, put back, and the socket is handed to that
 * server; the cost is per connection, not per call. So a worker keeps one endpoint: the
 * runtimes, their health checks and the router's records need no second port.
 */
import type net from 'node:net';
import type { Server as HttpServer } from 'node:http';

/** What every cleartext HTTP/2 connection starts with. */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** A connection that says nothing for this long is closed (as HTTP's header timeout would). */
const FIRST_BYTES_TIMEOUT_MS = 10_000;

export type Protocol = 'http1' | 'http2';

/**
 * Which protocol a connection speaks, from its first bytes; undefined while the bytes
 * so far are a beginning of the preface (wait for more).
 */
export function protocolOf(firstBytes: Buffer): Protocol | undefined {
  const length = Math.min(firstBytes.length, HTTP2_PREFACE.length);
  if (!firstBytes.subarray(0, length).equals(HTTP2_PREFACE.subarray(0, length))) return 'http1';
  return length === HTTP2_PREFACE.length ? 'http2' : undefined;
}

/**
 * Makes the worker's HTTP server (Fastify's, before it listens) hand connections that
 * open with the HTTP/2 preface to `http2` (grpc-js's ConnectionInjector), and the rest
 * to its own connection handling. The HTTP server keeps listening, timing out and
 * closing as before; a gRPC connection counts among its connections, so closing it
 * waits for them too.
 */
export function serveHttp2Alongside(httpServer: HttpServer, http2: (socket: net.Socket) => void): void {
  const http1 = httpServer.listeners('connection') as ((socket: net.Socket) => void)[];
  httpServer.removeAllListeners('connection');
  httpServer.on('connection', (socket: net.Socket) =>
    route(socket, (protocol) => {
      if (protocol === 'http2') http2(socket);
      else for (const listener of http1) listener.call(httpServer, socket);
    }),
  );
}

function route(socket: net.Socket, handOver: (protocol: Protocol) => void): void {
  let received: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), FIRST_BYTES_TIMEOUT_MS);
  // An error, or an end before the protocol is known (a TCP probe): nothing to hand on.
  const onError = () => socket.destroy();
  const onClose = () => clearTimeout(timer);
  const onData = (chunk: Buffer) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const protocol = protocolOf(received);
    if (!protocol) return;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('end', onError);
    socket.removeListener('close', onClose);
    // Back into the socket's buffer, where the chosen server reads it first.
    socket.pause();
    socket.unshift(received);
    handOver(protocol);
    // HTTP/1.1's parser reads what is buffered as the socket flows; HTTP/2's session
    // took it already (Node's http2 reads a socket's buffer when it takes the socket).
    if (protocol === 'http1') socket.resume();
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('end', onError);
  socket.on('close', onClose);
}
