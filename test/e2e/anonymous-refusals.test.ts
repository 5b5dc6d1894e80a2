/**
 * Issue #27, finding 5: what a caller without a key can make the router do cheaply must
 * stay cheap. A real `modeldock start` with a key, its Docker engine behind a recording
 * proxy: 401s write no info log line each (they are counted instead), /readyz answers
 * from a check at most a few seconds old instead of asking the engine every time, and
 * `Expect: 100-continue` without a valid key gets its 401 before the body is sent.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDockerProxy, type DockerProxy } from '../helpers/docker-proxy.js';
import { ownRouterEnv, spawnRouter, type RouterProcess } from '../helpers/router-process.js';
import { uniqueInstance } from '../helpers/router.js';

const ADMIN = 'admin-key-for-anonymous-refusal-tests';

/** The status line of the first answer to `head` (request line and headers) sent alone. */
function firstAnswer(url: string, head: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(head));
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(received.slice(0, end));
      }
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(new Error(`no answer; got ${JSON.stringify(received)}`));
    });
  });
}

describe('anonymous callers cost the router little', { timeout: 120_000 }, () => {
  let dir: string;
  let proxy: DockerProxy;
  let router: RouterProcess;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-anon-'));
    proxy = await startDockerProxy();
    router = await spawnRouter(
      {
        ...ownRouterEnv(uniqueInstance('an'), dir),
        MODELDOCK_RUNTIME: 'docker',
        DOCKER_HOST: proxy.dockerHost,
        MODELDOCK_API_KEY: ADMIN,
        MODELDOCK_LOG_LEVEL: 'info',
      },
      path.join(dir, 'router.log'),
    );
  });
  after(async () => {
    await router?.kill('SIGTERM');
    await proxy?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('200 requests without a key: 401 each, no log line each, all counted', async () => {
    for (let i = 0; i < 200; i++) {
      const response = await fetch(`${router.url}/v1/jobs/j${i}`);
      assert.equal(response.status, 401);
      await response.arrayBuffer();
    }
    const log = await readFile(path.join(dir, 'router.log'), 'utf8');
    const lines = log.split('\n').filter((line) => line.includes('request rejected'));
    assert.equal(lines.length, 0, lines.slice(0, 3).join('\n'));
    const metrics = await (
      await fetch(`${router.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).text();
    const counted = /modeldock_refused_requests_total\{protocol="http",reason="unauthenticated"\} (\d+)/.exec(
      metrics,
    );
    assert.ok(counted && Number(counted[1]) >= 200, `counted: ${counted?.[1]}`);
  });

  it('200 /readyz calls ask the engine at most once every 2 s', async () => {
    const pings = () => proxy.calls.filter((call) => call.path.endsWith('/_ping')).length;
    const before = pings();
    const started = performance.now();
    for (let i = 0; i < 200; i++) {
      const response = await fetch(`${router.url}/readyz`);
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    }
    const seconds = (performance.now() - started) / 1000;
    const asked = pings() - before;
    assert.ok(asked >= 1, 'the engine is asked');
    assert.ok(asked <= Math.ceil(seconds / 2) + 1, `${asked} pings in ${seconds.toFixed(1)} s`);
  });

  it('Expect: 100-continue without a valid key → 401 before the body; with the key → 100 Continue', async () => {
    const head = (authorization: string) =>
      `POST /v1/jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${authorization}` +
      `content-length: ${8 * 1024 * 1024}\r\nexpect: 100-continue\r\n\r\n`;
    assert.equal(await firstAnswer(router.url, head('')), 'HTTP/1.1 401 Unauthorized');
    assert.equal(
      await firstAnswer(router.url, head('authorization: Bearer not-a-key-of-this-router\r\n')),
      'HTTP/1.1 401 Unauthorized',
    );
    assert.equal(
      await firstAnswer(router.url, head(`authorization: Bearer ${ADMIN}\r\n`)),
      'HTTP/1.1 100 Continue',
    );
  });
});
