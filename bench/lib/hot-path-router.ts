/**
 * The router's inference hot path alone, in its own process, for bench/auth.bench.ts:
 * the real inferFastPath over a real http.Server, one cached route to the worker at
 * argv[2], the real KeyRing (argv[3] = a key to require, or none). `GET /cpu` answers the
 * process's CPU time so far (user + system, µs), which is what the bench divides by the
 * requests it sent.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeyRing } from '../../src/api/auth.js';
import { inferFastPath } from '../../src/api/infer-fast-path.js';
import { RouteEntry } from '../../src/lifecycle/route-table.js';
import { Metrics } from '../../src/observability/metrics.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';

const [workerUrl, key] = process.argv.slice(2);
const keys = new KeyRing(key ? { admin: [], infer: [key] } : undefined);
const route = new RouteEntry('b1', 'inf-0001', workerUrl!, 'b1');
const fastPath = inferFastPath({
  lifecycle: { tryAcquireRoute: () => route.acquire(), workerDidNotAnswer: () => undefined },
  workers: new WorkerClient(),
  metrics: new Metrics(),
  bodyLimitBytes: 16 * 1024 * 1024,
  admits: (authorization) => keys.authorize(authorization, 'infer').ok,
});
const server = http.createServer((request, response) => {
  if (fastPath(request, response)) return;
  if (request.url === '/cpu') {
    const { user, system } = process.cpuUsage();
    response.end(JSON.stringify({ cpu_us: user + system }));
    return;
  }
  response.writeHead(request.url?.endsWith('/infer') ? 401 : 404).end();
});
server.keepAliveTimeout = 72_000;
server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
