/**
 * The request budget (src/request-budget.ts) on a real Fastify server over loopback:
 * a declared length is charged before the body is read, a chunked body as it arrives,
 * a request alone always fits, and every charge is given back when its answer is out.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { isModeldockError } from '../../src/errors.js';
import { ByteBudget, installRequestBudget } from '../../src/request-budget.js';

const KB = 1024;

describe('request budget', () => {
  let app: FastifyInstance;
  let port: number;
  const budget = new ByteBudget('test', 100 * KB);
  /** Requests to /hold wait here until released. */
  const held: (() => void)[] = [];

  before(async () => {
    app = Fastify();
    installRequestBudget(app, () => ({ budget, costPerByte: 1 }));
    app.setErrorHandler((error, _request, reply) => {
      if (isModeldockError(error) && error.code === 'too_many_requests') {
        return reply.code(429).header('retry-after', '1').send({ error: error.message });
      }
      return reply.code(500).send({ error: String(error) });
    });
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    app.post('/hold', async (request) => {
      await new Promise<void>((resolve) => held.push(resolve));
      return { bytes: (request.body as Buffer).length };
    });
    app.post('/echo', async (request) => ({ bytes: (request.body as Buffer).length }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as AddressInfo).port;
  });
  after(async () => {
    await app?.close();
  });

  /** POST `size` bytes, declared or chunked (in 16 KiB chunks). */
  const post = (path: string, size: number, chunked: boolean) =>
    new Promise<{ status: number; retryAfter?: string }>((resolve, reject) => {
      const request = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(size) },
      });
      request.on('response', (response) => {
        response.resume();
        response.on('end', () =>
          resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'] as string }),
        );
      });
      request.on('error', reject);
      for (let sent = 0; sent < size; sent += 16 * KB)
        request.write(Buffer.alloc(Math.min(16 * KB, size - sent)));
      request.end();
    });

  const waitFor = async (condition: () => boolean) => {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
  };

  it('takes a request alone past the bound, and gives every charge back', async () => {
    assert.equal((await post('/echo', 300 * KB, false)).status, 200);
    assert.equal((await post('/echo', 300 * KB, true)).status, 200);
    assert.equal(budget.inFlightBytes, 0);
  });

  it('refuses a declared length that does not fit beside one in flight, with Retry-After', async () => {
    const first = post('/hold', 80 * KB, false);
    await waitFor(() => held.length === 1);
    assert.equal(budget.inFlightBytes, 80 * KB);
    assert.deepEqual(await post('/echo', 40 * KB, false), { status: 429, retryAfter: '1' });
    assert.equal((await post('/echo', 10 * KB, false)).status, 200);
    held.shift()!();
    assert.equal((await first).status, 200);
    await waitFor(() => budget.inFlightBytes === 0);
  });

  it('counts a chunked body as it arrives and refuses it at the chunk that passes the bound', async () => {
    const first = post('/hold', 80 * KB, true);
    await waitFor(() => held.length === 1);
    assert.equal(budget.inFlightBytes, 80 * KB);
    assert.deepEqual(await post('/echo', 40 * KB, true), { status: 429, retryAfter: '1' });
    held.shift()!();
    assert.equal((await first).status, 200);
    await waitFor(() => budget.inFlightBytes === 0);
  });
});
