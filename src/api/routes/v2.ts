/**
 * `/v2`: the Open Inference Protocol with the job id as the model name, so standard
 * KServe v2 / Triton HTTP clients can call the router. Inference bodies are streamed to
 * the job's worker over a keep-alive pool and the answer is streamed back unparsed.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { validateId } from '../../ids.js';
import type { Lifecycle } from '../../lifecycle/lifecycle.js';
import type { Metrics } from '../../observability/metrics.js';
import { WORKER_ANSWER_TIMEOUT_MS, type WorkerClient } from '../../runtime/worker-client.js';
import type { Store } from '../../store/store.js';
import { answerWorkerFailure, endToEndHeaders } from '../worker-proxy.js';

export interface V2Deps {
  lifecycle: Lifecycle;
  workers: WorkerClient;
  store: Store;
  metrics: Metrics;
  version: string;
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
    let statusCode = 502;
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
          statusCode = status;
          reply.raw.writeHead(status, endToEndHeaders(headers));
          return reply.raw;
        },
      );
    } catch (error) {
      // A client that went away cancels the upstream request; that says nothing about the worker.
      if (request.raw.socket?.destroyed) return;
      answerWorkerFailure(deps, jobId, reply.raw, error, started);
      return;
    } finally {
      route.release();
    }
    metrics.observeInference(jobId, statusCode, (performance.now() - started) / 1000);
  }

  return async (app) => {
    // Bodies are streamed to the worker as they are: no parsing here.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

    app.get('/health/live', async () => ({ live: true }));
    app.get('/health/ready', async () => ({ ready: true }));
    app.get('/', async () => ({
      name: 'modeldock',
      version: deps.version,
      extensions: ['model_repository'],
    }));

    app.get<{ Params: { job: string } }>('/models/:job', (request, reply) => proxy(request, reply, ''));
    app.post<{ Params: { job: string } }>('/models/:job/infer', (request, reply) =>
      proxy(request, reply, '/infer'),
    );
    app.get<{ Params: { job: string } }>('/models/:job/ready', async (request, reply) => {
      validateId('job_id', request.params.job);
      const server = await store.currentServer(request.params.job);
      const ready = server?.state === 'ready';
      return reply.code(ready ? 200 : 400).send({ name: request.params.job, ready });
    });

    app.post('/repository/index', async () => {
      const jobs = await store.listJobs();
      const servers = await Promise.all(jobs.map((job) => store.currentServer(job.jobId)));
      return jobs.map((job, i) => {
        const state = servers[i]?.state;
        return {
          name: job.jobId,
          version: '1',
          state:
            state === 'ready'
              ? 'READY'
              : state === 'loading' || state === 'creating'
                ? 'LOADING'
                : 'UNAVAILABLE',
          reason: servers[i]?.reason ?? '',
        };
      });
    });
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
