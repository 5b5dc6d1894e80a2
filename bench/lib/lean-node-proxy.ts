/**
 * The leanest Node.js reverse proxy for the routing benchmark's one request: a raw
 * `http` server and undici's `dispatch`, no framework, no routing table, no metrics, no
 * error mapping. It is a baseline, not a product: what a Node.js router cannot go below
 * on this machine, so the benchmark can tell the router's own cost from the platform's.
 *
 *   node --import tsx bench/lib/lean-node-proxy.ts <port> <worker origin> [<worker secret>]
 *
 * With a secret it sends it as a router does (x-modeldock-worker-secret). It answers
 * with the worker's Content-Length, as the router does (not chunked).
 */
import http from 'node:http';
import { Pool } from 'undici';

const [port, upstream, secret] = [Number(process.argv[2]), process.argv[3]!, process.argv[4]];
const extra: Record<string, string> = secret ? { 'x-modeldock-worker-secret': secret } : {};
const pool = new Pool(upstream, { connections: 64, pipelining: 1 });

const server = http.createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    pool.dispatch(
      {
        method: 'POST',
        path: request.url!,
        headers: {
          'content-type': 'application/json',
          'content-length': request.headers['content-length']!,
          ...extra,
        },
        body: Buffer.concat(chunks),
      },
      {
        // Its presence is what marks a handler as undici's current (controller) kind.
        onRequestStart() {},
        onResponseStart(_controller, statusCode, headers) {
          // The worker's Content-Length passed on, as the router does: without it Node.js
          // would answer chunked, a different (and larger) answer than the router's.
          const length = headers['content-length'];
          response.writeHead(statusCode, {
            'content-type': String(headers['content-type']),
            ...(length === undefined ? {} : { 'content-length': String(length) }),
          });
        },
        onResponseData(_controller, chunk) {
          response.write(chunk);
        },
        onResponseEnd() {
          response.end();
        },
        onResponseError(_controller, error) {
          response.writeHead(502).end(String(error));
        },
      },
    );
  });
});
server.keepAliveTimeout = 72_000;
server.listen(port, '127.0.0.1', () => process.send?.('listening'));
// A clean exit on the bench's SIGTERM (and Ctrl-C), so `--cpu-prof` and the like can flush.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
