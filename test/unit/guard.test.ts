/**
 * The guard in front of a foreign server (src/worker/guard-main.ts), run as the process
 * runtime runs it, in front of a small real server of the test's own
 * (test/fixtures/guard-upstream/server.mjs) that the guard starts and that counts what
 * reaches it: the worker secret and the body limit are kept, answers pass through
 * unchanged, and a request the server may have run is never sent to it twice.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  besideGuard,
  defaultWorkerCommand,
  guardCommand,
} from '../../src/runtime/process/process-runtime.js';
import { freeLoopbackPorts } from '../../src/runtime/loopback-port.js';
import { processStartTime } from '../../src/runtime/process/proc.js';
import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';
import { reprDigestOf } from '../../src/worker-store-protocol.js';
import { REPO_ROOT } from '../helpers/paths.js';

const SERVER = path.join(REPO_ROOT, 'test/fixtures/guard-upstream/server.mjs');
const SECRET = 'guard-test-secret-0123456789abcdef';
const BODY_LIMIT = 64 * 1024;

interface Guard {
  url: string;
  port: number;
  process: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

/**
 * How the guard comes to guard its server: `beside` as the process runtime starts it (a
 * shell forks the server and becomes the guard, which adopts it), `spawned` as Docker's
 * entry point runs it (the guard starts the server).
 */
type Mode = 'beside' | 'spawned';

/**
 * The guard with `serverArgs` for node as its server; resolved once its health check
 * answers `until` (200: the server is ready).
 */
async function startGuard(
  mode: Mode,
  serverArgs: string[] = [SERVER],
  until = 200,
  env: Record<string, string> = { MODELDOCK_GUARD_STORE_DIR: REPO_ROOT },
): Promise<Guard> {
  const [port, serverPort] = (await freeLoopbackPorts(2)) as [number, number];
  const guard = guardCommand(defaultWorkerCommand());
  const server = [process.execPath, ...serverArgs];
  const run =
    mode === 'beside'
      ? besideGuard(guard, server, REPO_ROOT)
      : { command: guard.command, args: [...guard.args, '--', ...server] };
  const child = spawn(run.command, run.args, {
    cwd: guard.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      MODELDOCK_GUARD_HOST: '127.0.0.1',
      MODELDOCK_GUARD_PORT: String(port),
      MODELDOCK_WORKER_PORT: String(serverPort),
      MODELDOCK_WORKER_SECRET: SECRET,
      MODELDOCK_WORKER_BODY_LIMIT: String(BODY_LIMIT),
      MODELDOCK_LOG_LEVEL: 'warn',
      ...env,
    },
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  // The health check goes through the guard to the server.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await fetch(`${url}/v2/health/ready`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === until) break;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`guard exited: ${output}`);
    if (Date.now() > deadline) throw new Error(`guard not ready: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { url, port, process: child, exited, output: () => output };
}

const withSecret = { [WORKER_SECRET_HEADER]: SECRET };

async function counts(guard: Guard): Promise<Record<string, number>> {
  return (await fetch(`${guard.url}/counts`, { headers: withSecret })).json() as Promise<
    Record<string, number>
  >;
}

/** The raw answer to a request written by hand (status line and what follows). */
function rawExchange(port: number, request: string, body?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(request);
      if (body) socket.write(body);
    });
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n\r\n')) {
        resolve(answer);
        socket.destroy();
      }
    });
    socket.on('error', (error) => (answer ? resolve(answer) : reject(error)));
    socket.on('close', () => resolve(answer));
  });
}

for (const mode of ['beside', 'spawned'] as const) describeGuard(mode);

function describeGuard(mode: Mode) {
  describe(`the guard in front of a foreign server (${mode})`, { timeout: 120_000 }, () => {
    let guard: Guard;

    before(async () => {
      guard = await startGuard(mode);
    });

    after(async () => {
      guard.process.kill('SIGTERM');
      await guard.exited;
    });

    it('an infer the server may have run is never sent to it twice', async () => {
      const answer = await fetch(`${guard.url}/v2/models/lost/infer`, {
        method: 'POST',
        headers: { ...withSecret, 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [] }),
      });
      const text = await answer.text();
      assert.equal((await counts(guard))['POST /v2/models/lost/infer'], 1, 'the server ran it once');
      // Not 503, which says "not ready yet, nothing happened": the server may have run it.
      assert.equal(answer.status, 502, text);
    });

    it('a read whose connection was closed under it is sent once more', async () => {
      const answer = await fetch(`${guard.url}/v2/models/lost`, { headers: withSecret });
      assert.equal(answer.status, 200);
      assert.deepEqual(await answer.json(), { name: 'lost' });
      assert.equal((await counts(guard))['GET /v2/models/lost'], 2);
    });

    it('after an error answered before the body was read, the next request reaches the server once', async () => {
      for (let i = 0; i < 10; i++) {
        const refused = await fetch(`${guard.url}/v2/models/early/infer`, {
          method: 'POST',
          headers: { ...withSecret, 'content-type': 'application/octet-stream' },
          body: Buffer.alloc(4096, 1),
        });
        assert.equal(refused.status, 422);
        const next = await fetch(`${guard.url}/v2/models/echo/infer`, {
          method: 'POST',
          headers: { ...withSecret, 'content-type': 'application/json' },
          body: JSON.stringify({ i }),
        });
        assert.equal(next.status, 200, await next.clone().text());
        assert.equal(((await next.json()) as { text: string }).text, JSON.stringify({ i }));
      }
      const seen = await counts(guard);
      assert.equal(seen['POST /v2/models/early/infer'], 10);
      assert.equal(seen['POST /v2/models/echo/infer'], 10);
    });

    it('obeys only callers with the worker secret; the health checks answer anyone', async () => {
      const before = await counts(guard);
      const none = await fetch(`${guard.url}/v2/models/echo/infer`, { method: 'POST', body: '{}' });
      assert.equal(none.status, 401);
      const wrong = await fetch(`${guard.url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: { [WORKER_SECRET_HEADER]: 'not-the-secret' },
        body: '{}',
      });
      assert.equal(wrong.status, 401);
      assert.match(((await wrong.json()) as { error: string }).error, /worker-secret/);
      assert.equal((await fetch(`${guard.url}/v2/health/live`)).status, 200);
      const after = await counts(guard);
      assert.equal(
        after['POST /v2/models/echo/infer'],
        before['POST /v2/models/echo/infer'],
        'none reached it',
      );
    });

    it("keeps its own settings from the server's environment", async () => {
      const names = (await (await fetch(`${guard.url}/env`, { headers: withSecret })).json()) as string[];
      assert.ok(names.includes('MODELDOCK_WORKER_SECRET'), "the worker's environment reaches it");
      assert.deepEqual(
        names.filter((name) => name.startsWith('MODELDOCK_GUARD_')),
        [],
      );
    });

    it('answers its worker stats itself, to the router only', async () => {
      assert.equal((await fetch(`${guard.url}/v2/worker/stats`)).status, 401);
      const stats = await fetch(`${guard.url}/v2/worker/stats`, { headers: withSecret });
      assert.equal(stats.status, 200);
      const body = (await stats.json()) as { rss_bytes: number; cpu_seconds: number };
      assert.ok(body.rss_bytes > 0 && body.cpu_seconds > 0, JSON.stringify(body));
      assert.equal((await counts(guard))['GET /v2/worker/stats'], undefined, 'not passed on');
    });

    it('refuses a body past its limit with 413, on its declared length before it is sent, and chunked', async () => {
      const declared = await rawExchange(
        guard.port,
        `POST /v2/models/echo/infer HTTP/1.1\r\nhost: g\r\n${WORKER_SECRET_HEADER}: ${SECRET}\r\n` +
          `content-type: application/json\r\ncontent-length: ${BODY_LIMIT + 1}\r\n\r\n`,
      );
      assert.match(declared, /^HTTP\/1\.1 413/);
      const chunked = await fetch(`${guard.url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: withSecret,
        body: new ReadableStream({
          start(controller) {
            for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(BODY_LIMIT / 4));
            controller.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      assert.equal(chunked.status, 413);
      const atLimit = await fetch(`${guard.url}/v2/models/echo/infer`, {
        method: 'POST',
        headers: withSecret,
        body: Buffer.alloc(BODY_LIMIT, 0x61),
      });
      assert.equal(atLimit.status, 200);
      assert.equal(((await atLimit.json()) as { bytes: number }).bytes, BODY_LIMIT);
    });

    it('passes requests and answers on as they are, without its own headers or the secret', async () => {
      const answer = await fetch(`${guard.url}/v2/models/echo/infer?x=1`, {
        method: 'POST',
        headers: { ...withSecret, 'content-type': 'application/json', 'x-trace': 'abc' },
        body: '{"inputs": []}',
      });
      const seen = (await answer.json()) as { text: string; headers: Record<string, string> };
      assert.equal(seen.text, '{"inputs": []}');
      assert.equal(seen.headers['x-trace'], 'abc');
      assert.equal(seen.headers[WORKER_SECRET_HEADER], undefined, 'the secret stays with the guard');
      const size = 8 * 1024 * 1024;
      const big = await fetch(`${guard.url}/big?bytes=${size}`, { headers: withSecret });
      assert.equal(big.status, 200);
      assert.equal((await big.arrayBuffer()).byteLength, size, 'a large answer is passed whole');
      const slow = await fetch(`${guard.url}/slow?ms=2500`, { headers: withSecret });
      assert.deepEqual(await slow.json(), { slow: true });
    });

    it('answers 503 while the server does not listen; a stop signal to the guard stops the server', async () => {
      // A "server" that never listens: the guard says it does not answer.
      const silent = await startGuard(mode, ['-e', 'setTimeout(() => {}, 600_000)'], 503);
      const answer = await fetch(`${silent.url}/v2/health/ready`);
      assert.equal(answer.status, 503);
      const pid = silent.process.pid!;
      const [server] = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(' ');
      assert.ok(server, "the server is the guard's child");
      silent.process.kill('SIGTERM');
      // Node.js exits 128 + 15 on the SIGTERM it was passed on.
      assert.equal(await silent.exited, 143);
      assert.equal(await processStartTime(Number(server)), undefined, 'the server is gone');
    });

    it('exits when its server does, with its exit code', async () => {
      const own = await startGuard(mode);
      const answer = await fetch(`${own.url}/exit?code=3`, { method: 'POST', headers: withSecret });
      assert.equal(answer.status, 200);
      assert.equal(await own.exited, 3, own.output());
    });
  });
}

describe("the guard with the router's store (nothing mounted)", { timeout: 120_000 }, () => {
  const config = 'name: "a1"\n';
  const sha256 = createHash('sha256').update(config).digest('hex');
  let router: http.Server;
  let routerUrl: string;
  let repository: string;
  /** What the router store was asked, with the secret it was shown. */
  const asked: string[] = [];

  before(async () => {
    repository = await mkdtemp(path.join(os.tmpdir(), 'modeldock-guard-fetch-'));
    // The router's store as the guard sees it: m-133 is one file; anything else is missing.
    router = http.createServer((request, response) => {
      asked.push(`${request.url} ${request.headers[WORKER_SECRET_HEADER] === SECRET ? 'secret' : 'none'}`);
      if (request.url === '/worker-store/model-dirs/m-133') {
        return response.end(
          JSON.stringify({
            model: 'm-133',
            files: [{ path: 'config.pbtxt', size: config.length, sha256 }],
            bytes: config.length,
          }),
        );
      }
      if (request.url === '/worker-store/model-dirs/m-133/config.pbtxt') {
        return response.writeHead(200, { 'repr-digest': reprDigestOf(sha256) }).end(config);
      }
      response.writeHead(404).end('{"error":{"message":"model not in the store"}}');
    });
    await new Promise<void>((resolve) => router.listen(0, '127.0.0.1', resolve));
    routerUrl = `http://127.0.0.1:${(router.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    router.close();
    await rm(repository, { recursive: true, force: true });
  });

  const fetching = (model: string) => ({
    MODELDOCK_MODELS_DIR: repository,
    MODELDOCK_GUARD_STORE_URL: routerUrl,
    MODELDOCK_GUARD_FETCH_MAX_BYTES: String(1024 * 1024),
    MODELDOCK_GUARD_FETCH_MODEL: model,
    MODELDOCK_GUARD_FETCH_AS: 'a1',
  });

  it("fetches the job's model into the repository, under the job's name, before the server starts", async () => {
    // The server refuses to start without its model in the repository.
    const server = [
      '-e',
      `require('node:fs').statSync(process.env.MODELDOCK_MODELS_DIR + '/a1/config.pbtxt'); import(process.argv[1])`,
      SERVER,
    ];
    const guard = await startGuard('spawned', server, 200, fetching('m-133'));
    try {
      assert.equal(await readFile(path.join(repository, 'a1', 'config.pbtxt'), 'utf8'), config);
      assert.deepEqual(asked.splice(0), [
        '/worker-store/model-dirs/m-133 secret',
        '/worker-store/model-dirs/m-133/config.pbtxt secret',
      ]);
      // The guard's settings (the router's URL among them) are not the server's.
      const env = (await (await fetch(`${guard.url}/env`, { headers: withSecret })).json()) as string[];
      assert.ok(!env.some((name) => name.startsWith('MODELDOCK_GUARD_')), env.join(' '));
    } finally {
      guard.process.kill('SIGTERM');
      await guard.exited;
    }
  });

  it('a model it cannot fetch ends the guard with the reason, and no server is started', async () => {
    const guard = await startGuard('spawned', [SERVER], 200, fetching('absent')).catch(
      (error: Error) => error,
    );
    assert.ok(guard instanceof Error, 'the guard never became ready');
    assert.match(
      guard.message,
      /fetching model absent from the router failed: the router's store answered 404/,
    );
    assert.deepEqual(asked.splice(0), ['/worker-store/model-dirs/absent secret']);
  });
});
