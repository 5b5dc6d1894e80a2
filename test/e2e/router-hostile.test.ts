/**
 * The inference path through a real router and real Docker workers against hostile and
 * unusual requests (issue #17): curl's `Expect: 100-continue`, bodies over the limit on
 * every path, deep nesting on /v1, a neighbour container driving a worker, a worker that
 * lost its model behind the router's back, and /v1/events clients that never read.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadInferenceService } from '../../src/inference-grpc/service-definition.js';
import { DIGITS } from '../helpers/fixtures.js';
import { WORKER_IMAGE } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { postJson, startTestRouter, type TestRouter } from '../helpers/router.js';
import type { ServerRecord } from '../../src/store/records.js';

const run = promisify(execFile);
const digit = DIGITS[0]!;
const inferBody = {
  inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: digit.inputs.pixels }],
  outputs: [{ name: 'label' }],
};

async function inference502s(t: TestRouter, job: string): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('modeldock_inference_requests_total') &&
        l.includes(`job="${job}"`) &&
        l.includes('status="502"'),
    );
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** Send a raw HTTP request and resolve with the status line once the answer starts. */
function rawStatus(url: string, head: string, body?: () => AsyncIterable<Buffer>): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const match = /^HTTP\/1\.1 (\d{3})/.exec(received);
      if (match && received.includes('\r\n\r\n')) {
        resolve(Number(match[1]));
        socket.destroy();
      }
    });
    socket.on('error', (error) => (received ? undefined : reject(error)));
    socket.on('connect', async () => {
      socket.write(head);
      if (!body) return;
      try {
        for await (const chunk of body())
          if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
      } catch {
        // the router may cut the upload once it has answered 413
      }
    });
  });
}

describe('router: hostile and unusual requests', () => {
  let t: TestRouter;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-hostile-'));
    t = await startTestRouter({
      env: {
        MODELDOCK_BODY_LIMIT: '4m',
        MODELDOCK_EVENT_STREAMS: '2',
        MODELDOCK_WORKER_MEMORY: '512m',
        MODELDOCK_GRPC_PORT: String(await freePort()),
      },
    });
    for (const job of ['h1', 'h2']) {
      const created = await postJson(`${t.url}/v1/jobs`, { job_id: job, model: 'm-131', dataset: 'ds-550' });
      assert.ok(created.status < 300, JSON.stringify(created.body));
    }
  });
  after(async () => {
    await t?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('curl --data-binary @file of more than 1 MiB (curl sends Expect: 100-continue) → 200 on /v2 and /v1', async () => {
    // Valid JSON padded with whitespace to 2 MiB: curl adds `Expect: 100-continue` above 1 MiB.
    const json = JSON.stringify(inferBody);
    const file = path.join(dir, 'big.json');
    await writeFile(file, json.slice(0, -1) + ' '.repeat(2 * 1024 * 1024) + '}');
    for (const url of [`${t.url}/v2/models/h1/infer`, `${t.url}/v1/jobs/h1/infer`]) {
      const { stdout, stderr } = await run('curl', [
        '-sS',
        '-v',
        '-o',
        '-',
        '-w',
        '\n%{http_code}',
        '-H',
        'content-type: application/json',
        '--data-binary',
        `@${file}`,
        url,
      ]);
      assert.match(stderr, /Expect: 100-continue/i, 'curl did not send Expect; the test proves nothing');
      const status = stdout.split('\n').at(-1);
      assert.equal(status, '200', `${url}: ${stdout.slice(0, 300)}`);
      assert.equal(JSON.parse(stdout.slice(0, stdout.lastIndexOf('\n'))).outputs[0].data[0], digit.label);
    }
    assert.equal(await inference502s(t, 'h1'), 0);
  });

  it('a /v2 body over the limit without a Content-Length (chunked) → 413, and the route stays', async () => {
    const before502 = await inference502s(t, 'h1');
    const status = await rawStatus(
      t.url,
      'POST /v2/models/h1/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
      async function* () {
        const chunk = Buffer.alloc(256 * 1024, 0x20);
        for (let i = 0; i < 40; i++)
          yield Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
        yield Buffer.from('0\r\n\r\n');
      },
    );
    assert.equal(status, 413);
    const again = await postJson(`${t.url}/v2/models/h1/infer`, inferBody);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(await inference502s(t, 'h1'), before502);
  });

  it('a /v2 body whose Content-Length is over the limit → 413 before any byte is read', async () => {
    const status = await rawStatus(
      t.url,
      `POST /v2/models/h1/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${20 * 1024 * 1024}\r\n\r\n`,
    );
    assert.equal(status, 413);
  });

  it('data nested 20,000 deep on /v1/jobs/{job}/infer → 400, not a worker failure; the route stays', async () => {
    const before502 = await inference502s(t, 'h1');
    const deep = `${'['.repeat(20_000)}1${']'.repeat(20_000)}`;
    const body = `{"inputs":[{"name":"pixels","shape":[1,64],"datatype":"FP32","data":${deep}}]}`;
    for (const url of [`${t.url}/v1/jobs/h1/infer`, `${t.url}/v2/models/h1/infer`]) {
      const response = await postJson(url, body);
      assert.equal(response.status, 400, `${url}: ${JSON.stringify(response.body)}`);
    }
    assert.equal(await inference502s(t, 'h1'), before502);
    const again = await postJson(`${t.url}/v1/jobs/h1/infer`, inferBody);
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  it('a neighbour container on the same network cannot drive a worker', async () => {
    const server = (await t.store.currentServer('h2'))!;
    const details = await t.docker.getContainer(server.workerName).inspect();
    const networks = Object.entries(details.NetworkSettings.Networks);
    assert.ok(networks.length > 0);
    const [network, settings] = networks[0]!;
    const script = `fetch('http://${settings.IPAddress}:8000/v2/repository/models/h2/unload',{method:'POST',headers:{'content-type':'application/json'},body:'{}'}).then(r=>console.log(r.status),e=>console.log('unreachable '+e.cause?.code))`;
    const { stdout } = await run('docker', [
      'run',
      '--rm',
      '--network',
      network,
      '--entrypoint',
      'node',
      WORKER_IMAGE,
      '-e',
      script,
    ]);
    assert.match(stdout.trim(), /^(401|unreachable .*)$/, `neighbour got: ${stdout}`);
    const response = await postJson(`${t.url}/v2/models/h2/infer`, inferBody);
    assert.equal(response.status, 200, JSON.stringify(response.body));
  });

  it("a worker that lost its model behind the router's back is reconciled: the request loads it again", async () => {
    const server = (await t.store.currentServer('h2'))!;
    assert.equal(server.state, 'ready');
    // What a neighbour (or a worker restart the engine did not report) leaves behind.
    await t.router.workers.unload(server.endpoint!, 'h2');
    for (const url of [`${t.url}/v2/models/h2/infer`, `${t.url}/v1/jobs/h2/infer`]) {
      const response = await postJson(url, inferBody);
      assert.equal(response.status, 200, `${url}: ${JSON.stringify(response.body)}`);
    }
    assert.equal(await t.router.workers.isLoaded(server.endpoint!, 'h2'), true);

    // gRPC's ModelInfer heals the same way.
    await t.router.workers.unload(server.endpoint!, 'h2');
    const Client = grpc.makeGenericClientConstructor(loadInferenceService(), 'GRPCInferenceService');
    const client = new Client(`127.0.0.1:${t.router.grpcPort}`, grpc.credentials.createInsecure()) as any;
    try {
      const answer = await new Promise<any>((resolve, reject) =>
        client.ModelInfer(
          {
            model_name: 'h2',
            inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64] }],
            outputs: [{ name: 'label' }],
            raw_input_contents: [Buffer.from(Float32Array.from(digit.inputs.pixels).buffer)],
          },
          (error: grpc.ServiceError | null, response: unknown) => (error ? reject(error) : resolve(response)),
        ),
      );
      assert.equal(answer.outputs[0].name, 'label');
      assert.equal(answer.raw_output_contents.length, 1);
    } finally {
      client.close();
    }
    assert.equal(await t.router.workers.isLoaded(server.endpoint!, 'h2'), true);
  });

  describe('/v1/events', () => {
    it('a client that never reads is dropped with a final event; the router buffers a bounded amount', async () => {
      const { hostname, port } = new URL(t.url);
      const socket = net.connect(Number(port), hostname);
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('GET /v1/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n');
      socket.pause();
      // Wait until the stream is subscribed: its first bytes are there (not read yet).
      await new Promise((resolve) => socket.once('readable', resolve));
      const server = (await t.store.currentServer('h1'))!;
      const big: ServerRecord = { ...server, reason: 'x'.repeat(100_000) };
      for (let i = 0; i < 400; i++) {
        t.router.events.publish({ type: 'server', server: big });
        await new Promise((resolve) => setImmediate(resolve));
      }
      let text = '';
      const ended = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 15_000);
        socket.on('data', (chunk) => (text += chunk.toString('utf8')));
        socket.once('end', () => {
          clearTimeout(timer);
          resolve(true);
        });
        socket.once('close', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      socket.resume();
      assert.equal(
        await ended,
        true,
        `the router kept the slow stream open (${text.length} bytes read, ending ${JSON.stringify(text.slice(-120))})`,
      );
      socket.destroy();
      assert.match(text, /event: dropped/);
      const delivered = text.split('event: server').length - 1;
      assert.ok(delivered < 400, `all ${delivered} events were buffered for the slow client`);
    });

    it('past the cap of concurrent streams → 429', async () => {
      const controllers = [new AbortController(), new AbortController()];
      try {
        for (const controller of controllers) {
          const response = await fetch(`${t.url}/v1/events`, { signal: controller.signal });
          assert.equal(response.status, 200);
        }
        const third = await fetch(`${t.url}/v1/events`, { signal: AbortSignal.timeout(5_000) });
        const text = third.status === 429 ? await third.text() : '';
        if (third.status !== 429) await third.body?.cancel();
        assert.equal(third.status, 429);
        assert.match(JSON.parse(text).error.message, /streams/);
      } finally {
        for (const controller of controllers) controller.abort();
      }
    });
  });
});
