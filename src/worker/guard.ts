/**
 * The guard in front of a foreign inference server (Triton, MLServer, an operator's own):
 * such a server cannot check modeldock's worker secret, so the guard takes the worker's
 * place on the port the router calls and forwards to the server, which listens on
 * loopback only. It obeys the same callers as modeldock's worker (secret-check.ts: the
 * secret, or a health check), holds the same body limit (one body at most, the bodies
 * in flight together at most, request-budget.ts), and passes everything else on
 * unchanged. docs/security.md says what it protects.
 *
 * Built on node:http alone, no framework and no client library: the guard starts beside
 * the server it guards, in the worker's CPU quota, so every millisecond of CPU it spends
 * loading code is one the server's start waits for. With Fastify and undici it took
 * about 0.4 s of CPU to listen; on Node.js's own modules, a tenth of that
 * (bench/serving-runtimes, BENCHMARKS.md).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { endToEndHeaders } from '../end-to-end-headers.js';
import { ByteBudget } from '../request-budget.js';
import { DEFAULT_WORKER_BODY_LIMIT } from '../worker-limits.js';
import { WORKER_SECRET_HEADER } from '../worker-secret.js';
import { GUARD_REPOSITORY_PATH } from '../guard-repository-protocol.js';
import type { RepositoryLinks } from './guard-repository.js';
import { GUARD_STATS_PATH, guardStats } from './guard-stats.js';
import { secretRefusal } from './secret-check.js';

export interface GuardOptions {
  /** The server behind the guard, on loopback. */
  upstreamPort: number;
  upstreamHost?: string;
  /** What callers must present; empty: open (a guard started by hand). */
  secret?: string;
  bodyLimitBytes?: number;
  /** The worker's name, in its stats. */
  name?: string;
  /** A pooled server's repository and the model store its models are linked from (guard-repository.ts). */
  links?: RepositoryLinks;
  /** Told of what goes wrong inside the guard (not of refusals: those are the caller's). */
  onError?: (message: string, error: unknown) => void;
}

/**
 * Methods that change nothing on the server, so sending one again is harmless (RFC 9110
 * §9.2.1). Only these are sent once more after a connection closed under them: an infer
 * (POST) that may have reached the server is never run twice.
 */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Idle connections to the server are dropped after this long, before the server drops
 * them itself (uvicorn, MLServer's HTTP server, after 5 s): a request sent on a
 * connection the server is closing at that moment fails, and an infer is not sent again.
 */
const IDLE_CONNECTION_MS = 2_000;

/** A refusal or failure the guard answers itself. */
class GuardAnswer extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Keeps connections to the server alive, except one that carried a body the server
 * answered with an error: a server that answers before reading the whole body (MLServer,
 * refusing a binary one) closes that connection right after, and the next request sent
 * on it would fail.
 */
class UpstreamAgent extends http.Agent {
  readonly spent = new WeakSet<Socket>();

  // Node's own answers whether the socket may be kept (false: the server's Keep-Alive
  // hint is too short), though its typings say void.
  override keepSocketAlive(socket: Socket): boolean {
    if (this.spent.has(socket)) return false;
    return (super.keepSocketAlive(socket) as unknown) !== false;
  }
}

export function createGuard(options: GuardOptions): http.Server {
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_WORKER_BODY_LIMIT;
  const budget = new ByteBudget('worker', bodyLimit);
  const agent = new UpstreamAgent({ keepAlive: true, maxSockets: 64, timeout: IDLE_CONNECTION_MS });
  const upstream = { host: options.upstreamHost ?? '127.0.0.1', port: options.upstreamPort };

  const handle = async (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => {
    try {
      const refusal = options.secret
        ? secretRefusal(options.secret, request.url ?? '/', request.headers[WORKER_SECRET_HEADER])
        : undefined;
      // Before a byte of the body is read (or, for a caller that waits, asked for).
      if (refusal) throw new GuardAnswer(401, refusal);
      if (request.method === 'GET' && request.url?.split('?')[0] === GUARD_STATS_PATH) {
        // Answered here, not by the server: the worker's CPU and memory (guard-stats.ts).
        return send(response, 200, await guardStats(options.name ?? 'guard'));
      }
      const body = await readBody(request, response, bodyLimit, budget, expectsContinue);
      const path = request.url?.split('?')[0] ?? '/';
      if (request.method === 'PUT' && path.startsWith(`${GUARD_REPOSITORY_PATH}/`)) {
        // The guard's own: a pooled server's repository gets a model. Loaded only when asked.
        const { linkRequest } = await import('./guard-repository.js');
        const linked = await linkRequest(options.links, path.slice(GUARD_REPOSITORY_PATH.length + 1), body);
        return send(response, linked.status, linked.body);
      }
      await forward(request, body, response);
    } catch (error) {
      if (error instanceof GuardAnswer) return answer(response, error, request.complete);
      options.onError?.('guard request failed', error);
      answer(response, new GuardAnswer(500, 'internal error'), request.complete);
    }
  };

  /** The request to the server, once more if it is safe to repeat and its connection closed under it. */
  const forward = (request: IncomingMessage, body: Buffer, response: ServerResponse, retry = true) =>
    new Promise<void>((resolve, reject) => {
      const method = request.method ?? 'GET';
      const outgoing = http.request({
        ...upstream,
        agent,
        method,
        path: request.url,
        headers: endToEndHeaders(request.headers),
      });
      let answered = false;
      // The caller went away before its answer was out: the server's work is no longer wanted.
      const abandon = () => {
        if (!response.writableFinished) outgoing.destroy();
      };
      response.once('close', abandon);
      outgoing.on('response', (reply) => {
        answered = true;
        if ((reply.statusCode ?? 500) >= 400 && body.length > 0) agent.spent.add(reply.socket);
        response.writeHead(reply.statusCode ?? 502, endToEndHeaders(reply.headers));
        // An answer cut short by the server reaches the caller cut short (no false end).
        pipeline(reply, response, () => resolve());
      });
      outgoing.on('error', (error: NodeJS.ErrnoException) => {
        if (answered) return; // the answer's own stream says so
        response.off('close', abandon);
        if (response.destroyed) return resolve();
        if (neverSent(error)) {
          // Starting, or gone: the router's readiness poll reads this as "not ready yet".
          return reject(
            new GuardAnswer(503, `the server behind this guard does not answer: ${error.message}`),
          );
        }
        if (retry && outgoing.reusedSocket && SAFE_METHODS.has(method)) {
          // A kept-alive connection the server closed as this was sent: a read goes again.
          return forward(request, body, response, false).then(resolve, reject);
        }
        reject(
          new GuardAnswer(
            SAFE_METHODS.has(method) ? 503 : 502,
            `the server behind this guard closed the connection without an answer (${error.code ?? error.message})` +
              (SAFE_METHODS.has(method) ? '' : '; the request may have run, so it is not sent again'),
          ),
        );
      });
      outgoing.end(body);
    });

  const server = http.createServer((request, response) => void handle(request, response, false));
  // A caller that waits for "100 Continue" before its body gets it only once the secret
  // and the declared length pass, so a refused body is never sent.
  server.on('checkContinue', (request, response) => void handle(request, response, true));
  server.on('close', () => agent.destroy());
  return server;
}

/**
 * The request's body, whole, within the limit and the budget of the bodies in flight
 * (charged as it arrives, released when the answer is out). Refused on a declared
 * length before it is read.
 */
async function readBody(
  request: IncomingMessage,
  response: ServerResponse,
  limit: number,
  budget: ByteBudget,
  expectsContinue: boolean,
): Promise<Buffer> {
  const tooLarge = (size: number) =>
    new GuardAnswer(413, `request body of ${size} bytes exceeds this worker's limit of ${limit} bytes`);
  const busy = () => {
    const error = budget.busyError();
    return new GuardAnswer(503, error.message, { 'retry-after': String(error.retryAfterSeconds ?? 1) });
  };
  let held = 0;
  response.once('close', () => budget.release(held));
  const declared = request.headers['content-length'];
  if (declared !== undefined) {
    const length = Number(declared);
    if (length > limit) throw tooLarge(length);
    if (!budget.tryTake(length)) throw busy();
    held = length;
  }
  if (expectsContinue) response.writeContinue();
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const fail = (error: Error) => {
      request.off('data', onData);
      request.pause();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return fail(tooLarge(size));
      if (size > held) {
        if (!budget.tryTake(size - held, held)) return fail(busy());
        held = size;
      }
      chunks.push(chunk);
    };
    request.on('data', onData);
    request.once('end', () => resolve(Buffer.concat(chunks, size)));
    request.once('error', reject);
    request.once('aborted', () => reject(new Error('the caller went away while sending its request')));
  });
}

/**
 * The guard's own answer. When the request's body was not read to its end, the
 * connection closes after it: the caller is not made to send the rest, nor the next
 * request to wait behind it.
 */
function answer(response: ServerResponse, refusal: GuardAnswer, bodyRead: boolean): void {
  if (response.destroyed) return;
  if (response.headersSent) {
    response.destroy();
    return;
  }
  send(
    response,
    refusal.status,
    { error: refusal.message },
    {
      ...refusal.headers,
      ...(bodyRead ? {} : { connection: 'close' }),
    },
  );
}

function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
  });
  response.end(text);
}

/** The request never reached the server: there was no connection to send it on. */
function neverSent(error: NodeJS.ErrnoException): boolean {
  return error.syscall === 'connect' || error.code === 'ECONNREFUSED';
}
