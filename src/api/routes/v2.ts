/**
 * `/v2`: the Open Inference Protocol with the job id as the model name, so standard
 * KServe v2 / Triton HTTP clients can call the router. Inference bodies are streamed to
 * the job's worker over a keep-alive pool and the answer is streamed back unparsed.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Writable, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import { InvalidInputError, errorMessage, type PayloadTooLargeError } from '../../errors.js';
import { validateId } from '../../ids.js';
import type { Lifecycle, RouteEntry } from '../../lifecycle/lifecycle.js';
import type { Metrics } from '../../observability/metrics.js';
import { WORKER_ANSWER_TIMEOUT_MS, type WorkerClient } from '../../runtime/worker-client.js';
import type { Store } from '../../store/store.js';
import { bodyTooLarge, checkDeclaredLength, limitBody } from '../body-limit.js';
import { protocolErrorHandler, protocolNotFoundHandler, toProtocolErrorResponse } from '../error-mapping.js';
import { ROUTER_EXTENSIONS, allModelStatistics, isJobReady, repositoryIndex } from '../inference-protocol.js';
import { endToEndHeaders } from '../../end-to-end-headers.js';
import { answerWorkerFailure } from '../worker-proxy.js';
import { inferThroughJson } from '../json-tensor-proxy.js';
import type { ReadinessProbe } from '../readiness.js';

export interface V2Deps {
  lifecycle: Lifecycle;
  workers: WorkerClient;
  store: Store;
  metrics: Metrics;
  version: string;
  logger?: Logger;
  /** Bodies streamed to a worker obey the same limit as the ones Fastify parses. */
  bodyLimitBytes: number;
  readiness: ReadinessProbe;
}

/** Where a worker's answer goes when it is not the client's to see. */
function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}

/** The body passed the limit mid-stream: a 413, and the rest of the upload is not read. */
function answerBodyTooLarge(reply: FastifyReply, error: PayloadTooLargeError): void {
  if (reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  const { status, body } = toProtocolErrorResponse(error);
  reply.raw.writeHead(status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
  reply.raw.end(JSON.stringify(body));
}

/** `{"ready": true}` in the (streamed, unparsed) index request body: only ready entries, as Triton does. */
async function readyOnly(body: unknown): Promise<boolean> {
  if (!body || typeof (body as Readable).read !== 'function') return false;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as Readable) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new InvalidInputError('a repository index request body is at most 64 KiB');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return false;
  try {
    return (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ready?: unknown } | null)?.ready === true;
  } catch (error) {
    throw new InvalidInputError(`the body is not valid JSON: ${errorMessage(error)}`);
  }
}

export function v2Routes(deps: V2Deps): FastifyPluginAsync {
  const { lifecycle, workers, store, metrics } = deps;

  async function proxy(
    request: FastifyRequest<{ Params: { job: string } }>,
    reply: FastifyReply,
    suffix: string,
  ): Promise<void> {
    const started = performance.now();
    const jobId = request.params.job;
    // acquireRoute() validates the id on a miss (a hit is a job id we already know) and
    // waits for a server being loaded; the route counts this request until release().
    const route = await lifecycle.acquireRoute(jobId);
    // A server without the binary tensor extension: translated to JSON and back.
    if (suffix === '/infer' && !route.binaryTensors) return inferThroughJson(deps, route, request, reply);
    let statusCode = 502;
    let notLoaded = false;
    try {
      const hasBody = request.method === 'POST';
      // undici's stream() writes the worker's answer straight into our socket: no
      // intermediate Readable, no Fastify serialization on the hot path.
      reply.hijack();
      await workers.pool(route.endpoint).stream(
        {
          method: request.method as 'GET' | 'POST',
          path: `${route.modelPath}${suffix}`,
          headers: endToEndHeaders(request.headers),
          ...(hasBody ? { body: request.body as Readable } : {}),
          headersTimeout: WORKER_ANSWER_TIMEOUT_MS,
          bodyTimeout: WORKER_ANSWER_TIMEOUT_MS,
        },
        ({ statusCode: status, headers }) => {
          if (status === 404) {
            notLoaded = true;
            return discard();
          }
          statusCode = status;
          reply.raw.writeHead(status, endToEndHeaders(headers));
          return reply.raw;
        },
      );
    } catch (error) {
      // A client that went away cancels the upstream request; that says nothing about the worker.
      if (request.raw.socket?.destroyed) return;
      const overLimit = bodyTooLarge(error);
      if (overLimit) return answerBodyTooLarge(reply, overLimit);
      answerWorkerFailure(deps, route, reply.raw, error, started);
      return;
    } finally {
      route.release();
    }
    if (notLoaded) return answerLostModel(route, reply, started);
    metrics.observeInference(jobId, statusCode, (performance.now() - started) / 1000);
  }

  /**
   * The worker does not have the model the router holds as ready: heal the server (load
   * it again) before answering. The streamed body is gone, so the client is told to send
   * again (503, Retry-After); the hot path, which holds the body, resends by itself.
   */
  async function answerLostModel(route: RouteEntry, reply: FastifyReply, started: number): Promise<void> {
    let status = 503;
    let body: unknown = {
      error: `the worker of job ${route.jobId} had lost its model; it is loaded again: send the request again`,
    };
    try {
      (await lifecycle.healLostModel(route)).release();
    } catch (error) {
      ({ status, body } = toProtocolErrorResponse(error));
    }
    metrics.observeInference(route.jobId, status, (performance.now() - started) / 1000);
    reply.raw.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1' });
    reply.raw.end(JSON.stringify(body));
  }

  return async (app) => {
    // Bodies are streamed to the worker as they are: no parsing here.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (request, payload, done) => {
      try {
        checkDeclaredLength(request.headers['content-length'], deps.bodyLimitBytes);
        done(null, limitBody(payload, deps.bodyLimitBytes));
      } catch (error) {
        done(error as Error);
      }
    });
    // The protocol's error form, `{"error": "<message>"}`: what its clients parse.
    app.setErrorHandler(protocolErrorHandler);
    app.setNotFoundHandler(protocolNotFoundHandler);

    app.get('/health/live', async () => ({ live: true }));
    // The router's real readiness, as /readyz: a probe or client sees 503 while the store or runtime is away.
    app.get('/health/ready', async (_request, reply) => {
      const { ready, checks } = await deps.readiness();
      return reply.code(ready ? 200 : 503).send(ready ? { ready } : { ready, checks });
    });
    app.get('/', async () => ({
      name: 'modeldock',
      version: deps.version,
      extensions: ROUTER_EXTENSIONS,
    }));

    app.get<{ Params: { job: string } }>('/models/:job', (request, reply) => proxy(request, reply, ''));
    app.post<{ Params: { job: string } }>('/models/:job/infer', (request, reply) =>
      proxy(request, reply, '/infer'),
    );
    app.get<{ Params: { job: string } }>('/models/:job/config', (request, reply) =>
      proxy(request, reply, '/config'),
    );
    app.get<{ Params: { job: string } }>('/models/:job/stats', (request, reply) =>
      proxy(request, reply, '/stats'),
    );
    app.get('/models/stats', async () => allModelStatistics(deps));
    app.get<{ Params: { job: string } }>('/models/:job/ready', async (request, reply) => {
      const ready = await isJobReady(store, request.params.job);
      return reply.code(ready ? 200 : 400).send({ name: request.params.job, ready });
    });

    app.post<{ Body: unknown }>('/repository/index', async (request) =>
      repositoryIndex(store, { readyOnly: await readyOnly(request.body) }),
    );
    app.post<{ Params: { job: string } }>('/repository/models/:job/load', async (request) => {
      validateId('job_id', request.params.job);
      await lifecycle.deployLoad({ jobId: request.params.job });
      return {};
    });
    app.post<{ Params: { job: string } }>('/repository/models/:job/unload', async (request) => {
      validateId('job_id', request.params.job);
      await lifecycle.deployUnload({ jobId: request.params.job });
      return {};
    });
  };
}
