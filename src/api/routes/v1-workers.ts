/**
 * `/v1` routes about the workers themselves rather than the records: a job's worker
 * output (`modeldock logs`, the console's log tail) and every worker's CPU and memory
 * (`modeldock top`, the console's memory chart).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Readable } from 'node:stream';
import { NotFoundError } from '../../errors.js';
import type { Lifecycle } from '../../lifecycle/lifecycle.js';
import type { Runtime } from '../../runtime/runtime.js';
import type { Store } from '../../store/store.js';
import { JobParams, LogQuery } from '../schemas.js';
import { WorkerStatsSampler } from '../worker-stats.js';
import { chartRoutes } from './console.js';

export interface WorkerRouteDeps {
  lifecycle: Lifecycle;
  store: Store;
  runtime: Runtime;
}

export function workerRoutes({ lifecycle, store, runtime }: WorkerRouteDeps): FastifyPluginAsyncTypebox {
  const sampler = new WorkerStatsSampler(runtime, store);
  return async (app) => {
    const tags = ['v1'];
    await app.register(chartRoutes({ store, sampler }));

    app.get(
      '/jobs/:job_id/logs',
      {
        schema: {
          tags,
          params: JobParams,
          querystring: LogQuery,
          summary:
            "The job's worker output as plain text: the last `tail` lines, then with `follow=true` what it prints next until it stops",
          produces: ['text/plain'],
        },
      },
      async (request, reply) => {
        const { job_id } = request.params;
        const tail = request.query.tail === undefined ? 100 : Number(request.query.tail);
        const follow = request.query.follow === 'true';
        const { server } = await lifecycle.getJob(job_id);
        if (!server || server.state === 'terminated') {
          throw new NotFoundError(`job ${job_id} has no worker (no live server)`);
        }
        // Ends the runtime's stream (and its engine request) when the client goes away.
        const abort = new AbortController();
        request.raw.on('close', () => abort.abort());
        const chunks = await runtime.openLogs(server.workerName, { tail, follow, signal: abort.signal });
        return reply
          .header('content-type', 'text/plain; charset=utf-8')
          .header('cache-control', 'no-cache')
          .header('x-modeldock-worker', server.workerName)
          .send(Readable.from(chunks));
      },
    );

    app.get(
      '/stats',
      {
        schema: {
          tags,
          summary:
            'CPU and memory of every running worker (servers and the warm pool); cpu_percent is over the time since the previous request (null on the first), 100 = one CPU',
        },
      },
      async () => ({ workers: await sampler.sample() }),
    );
  };
}
