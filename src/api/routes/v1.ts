/** `/v1`: resource-style API over jobs, servers, operations and events. */
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { InvalidInputError, NotFoundError } from '../../errors.js';
import type { Catalog } from '../../lifecycle/catalog.js';
import type { EventBus } from '../../lifecycle/event-bus.js';
import type { Lifecycle, OperationOutcome } from '../../lifecycle/lifecycle.js';
import { LIVE_STATES } from '../../lifecycle/state-machine.js';
import {
  SERVER_STATES,
  OPERATION_TYPES,
  type ServerRecord,
  type ServerState,
  type OperationType,
} from '../../store/records.js';
import type { Store } from '../../store/store.js';
import { EventStreams } from '../event-stream.js';
import { presentJob, presentLimits, presentOperation, presentPool, presentServer } from '../presenters.js';
import type { Runtime } from '../../runtime/runtime.js';
import { workerRoutes } from './v1-workers.js';
import type { RouterBudgets } from '../request-budgets.js';
import { InferBody, JobBody, JobParams, OperationQuery, ServerQuery, TempBody } from '../schemas.js';

export interface V1Deps {
  reconcile: () => Promise<unknown>;
  lifecycle: Lifecycle;
  store: Store;
  catalog: Catalog;
  events: EventBus;
  runtime: Runtime;
  /** Most /v1/events streams open at once (MODELDOCK_EVENT_STREAMS). */
  maxEventStreams?: number;
  /** The request budgets, shown by /v1/limits. */
  requestBudgets?: RouterBudgets;
}

/** Default of MODELDOCK_EVENT_STREAMS. */
export const DEFAULT_EVENT_STREAMS = 64;

function presentOutcome(outcome: OperationOutcome) {
  return {
    operation: presentOperation(outcome.operation),
    server: outcome.server ? presentServer(outcome.server) : null,
    ...(outcome.servers === undefined ? {} : { servers: outcome.servers.map(presentServer) }),
    ...(outcome.result === undefined ? {} : { result: outcome.result }),
  };
}

export function v1Routes({
  lifecycle,
  store,
  catalog,
  events,
  reconcile,
  runtime,
  maxEventStreams,
  requestBudgets,
}: V1Deps): FastifyPluginAsyncTypebox {
  const streams = new EventStreams(events, maxEventStreams ?? DEFAULT_EVENT_STREAMS);
  return async (app) => {
    const tags = ['v1'];
    // Open event streams end when the router shuts down (an SSE client reconnects), so
    // they do not hold the shutdown's drain until its timeout.
    app.addHook('preClose', async () => streams.endAll());
    await app.register(workerRoutes({ lifecycle, store, runtime }));

    app.get('/jobs', { schema: { tags, summary: 'List jobs with their servers (replicas)' } }, async () => {
      const jobs = await store.listJobs();
      const live = await store.listServers({ kind: 'job', states: LIVE_STATES });
      const byJob = new Map<string, ServerRecord[]>();
      for (const server of live) byJob.set(server.jobId, [...(byJob.get(server.jobId) ?? []), server]);
      const last = await Promise.all(
        jobs.map((job) => (byJob.has(job.jobId) ? undefined : store.currentServer(job.jobId))),
      );
      return {
        jobs: jobs.map((job, i) => {
          const servers = byJob.get(job.jobId) ?? [];
          return presentJob(job, servers[0] ?? last[i], servers);
        }),
      };
    });

    app.post(
      '/jobs',
      { schema: { tags, summary: 'DEPLOY_CREATE: create and load a server for the job', body: JobBody } },
      async (request, reply) => {
        const { job_id, model, dataset, replicas, scale_target, placement } = request.body;
        const outcome = await lifecycle.deployCreate({
          jobId: job_id,
          model,
          dataset,
          ...(replicas ? { replicas } : {}),
          ...(placement ? { placement } : {}),
          ...(scale_target === undefined ? {} : { scaleTarget: scale_target }),
        });
        const created = outcome.operation.steps.some((s) => s.name === 'create');
        return reply.code(created ? 201 : 200).send(presentOutcome(outcome));
      },
    );

    app.get(
      '/jobs/:job_id',
      { schema: { tags, params: JobParams, summary: 'A job and its server' } },
      async (request) => {
        const { job, server, servers } = await lifecycle.getJob(request.params.job_id);
        return presentJob(job, server, servers);
      },
    );

    const actions = {
      load: (jobId: string) => lifecycle.deployLoad({ jobId }),
      unload: (jobId: string) => lifecycle.deployUnload({ jobId }),
      terminate: (jobId: string) => lifecycle.terminate({ jobId }),
    } as const;
    for (const [action, run] of Object.entries(actions)) {
      app.post(
        `/jobs/:job_id/${action}`,
        { schema: { tags, params: JobParams, summary: `${action} the job's server` } },
        async (request) => presentOutcome(await run(request.params.job_id)),
      );
    }
    app.delete(
      '/jobs/:job_id',
      { schema: { tags, params: JobParams, summary: 'TERMINATE the job (its records are kept as history)' } },
      async (request) => presentOutcome(await lifecycle.terminate({ jobId: request.params.job_id })),
    );

    // The body is not parsed here: a JSON tree can cost twenty times its bytes and hold
    // the event loop for seconds (a list of one-element lists), so its bytes go to the
    // worker as they came, and the worker parses and checks them (issue #27). The schema
    // documents the body; only the path's own validation applies.
    await app.register(async (raw) => {
      raw.removeAllContentTypeParsers();
      raw.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
      raw.withTypeProvider<TypeBoxTypeProvider>().post(
        '/jobs/:job_id/infer',
        {
          schema: {
            tags,
            params: JobParams,
            body: InferBody,
            summary: 'Inference on the job (Open Inference Protocol body); loads an unloaded server',
          },
          attachValidation: true,
        },
        async (request) => {
          const invalid = request.validationError as (Error & { validationContext?: string }) | undefined;
          if (invalid && invalid.validationContext !== 'body') throw invalid;
          return lifecycle.infer(request.params.job_id, request.body as unknown as Buffer);
        },
      );
    });

    app.post(
      '/temp',
      { schema: { tags, body: TempBody, summary: 'TEMP: one-shot server, inference, removal' } },
      async (request) => {
        const { job_id, model, dataset, inputs, placement } = request.body;
        const outcome = await lifecycle.temp({
          jobId: job_id,
          model,
          dataset,
          ...(placement ? { placement } : {}),
          ...(inputs === undefined ? {} : { inputs: { inputs } }),
        });
        return presentOutcome(outcome);
      },
    );

    app.get(
      '/servers',
      { schema: { tags, querystring: ServerQuery, summary: 'List servers' } },
      async (request) => {
        const { job_id, state, kind } = request.query;
        const states = state?.split(',').map((s) => s.trim());
        if (states?.some((s) => !(SERVER_STATES as readonly string[]).includes(s))) {
          throw new InvalidInputError(`state must be one of ${SERVER_STATES.join(', ')}`);
        }
        const servers = await store.listServers({
          ...(job_id ? { jobId: job_id } : {}),
          ...(kind ? { kind } : {}),
          ...(states ? { states: states as ServerState[] } : {}),
        });
        return { servers: servers.map(presentServer) };
      },
    );

    app.get(
      '/servers/:server_id',
      { schema: { tags, params: Type.Object({ server_id: Type.String() }), summary: 'One server' } },
      async (request) => {
        const server = await store.getServer(request.params.server_id);
        if (!server) throw new NotFoundError(`server ${request.params.server_id} not found`);
        return presentServer(server);
      },
    );

    app.get(
      '/operations',
      { schema: { tags, querystring: OperationQuery, summary: 'Operation records, newest first' } },
      async (request) => {
        const { job_id, server_id, type, status, limit } = request.query;
        if (type && !(OPERATION_TYPES as readonly string[]).includes(type)) {
          throw new InvalidInputError(`type must be one of ${OPERATION_TYPES.join(', ')}`);
        }
        const operations = await store.listOperations({
          ...(job_id ? { jobId: job_id } : {}),
          ...(server_id ? { serverId: server_id } : {}),
          ...(type ? { type: type as OperationType } : {}),
          ...(status ? { status } : {}),
          limit: limit ? Math.min(Number(limit), 1000) : 100,
        });
        return { operations: operations.map(presentOperation) };
      },
    );

    app.get(
      '/operations/:operation_id',
      { schema: { tags, params: Type.Object({ operation_id: Type.String() }), summary: 'One operation' } },
      async (request) => {
        const operation = await store.getOperation(request.params.operation_id);
        if (!operation) throw new NotFoundError(`operation ${request.params.operation_id} not found`);
        return presentOperation(operation);
      },
    );

    app.get(
      '/pool',
      {
        schema: {
          tags,
          summary:
            'The warm pool: configured size, the bound it keeps now and why (memory budget), ready and starting workers',
        },
      },
      async () => presentPool(lifecycle.pool.status()),
    );

    app.get(
      '/limits',
      {
        schema: {
          tags,
          summary:
            'Bounds against exhaustion: live servers against MODELDOCK_MAX_SERVERS, jobs on shared workers against MODELDOCK_MAX_SHARED_JOBS, creations running and queued, request bytes held against MODELDOCK_REQUEST_MEMORY',
        },
      },
      async () =>
        presentLimits(await lifecycle.creations.status(), requestBudgets, await lifecycle.fleet.status()),
    );

    app.post(
      '/reconcile',
      {
        schema: {
          tags,
          summary: 'Compare the store with the runtime now and converge; returns the pass report',
        },
      },
      async () => reconcile(),
    );

    app.get('/models', { schema: { tags, summary: 'Models in the model store' } }, async () => ({
      models: await catalog.listModels(),
    }));
    app.get('/datasets', { schema: { tags, summary: 'Datasets in the dataset store' } }, async () => ({
      datasets: await catalog.listDatasets(),
    }));

    app.get(
      '/events',
      {
        // A HEAD would open a stream that never ends.
        exposeHeadRoute: false,
        schema: { tags, summary: 'Server-sent events: server state changes and finished operations' },
      },
      async (request, reply) => streams.serve(request, reply),
    );
  };
}
