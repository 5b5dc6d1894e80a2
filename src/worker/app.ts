/**
 * The inference worker's HTTP API: the Open Inference Protocol (KServe v2 / Triton HTTP)
 * with the model-repository extension, plus batch inference over a dataset (TEMP) and
 * memory statistics. Built without listening, so tests call it in-process.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import {
  type ErrorCode,
  InvalidInputError,
  NotFoundError,
  TooManyRequestsError,
  errorMessage,
  isModeldockError,
} from '../errors.js';
import { ByteBudget, installRequestBudget } from '../request-budget.js';
import { validateId } from '../ids.js';
import { VERSION as SERVER_VERSION } from '../version.js';
import { DEFAULT_WORKER_BODY_LIMIT } from '../worker-limits.js';
import { Batcher, CancelledError } from './batcher.js';
import { runBatch, type Outcome } from './batched-run.js';
import { DatasetStore } from './dataset-store.js';
import { requireWorkerSecret } from './secret-check.js';
import {
  MODEL_VERSION,
  answer,
  elapsedNs,
  inferDataset,
  prepareRequest,
  type InferResult,
  type PreparedRequest,
  type V2InferRequest,
} from './inference.js';
import { InferenceStats } from './inference-stats.js';
import { modelConfig } from './model-config.js';
import { DEFAULT_MAX_ELEMENTS } from './tensors.js';
import { ModelRegistry, type RegistryEntry } from './model-registry.js';
import { ModelStore, type LoadedModel } from './model-store.js';
import { rssMeter, type MemoryMeter } from './memory-meter.js';
import { LocalStoreSource } from './local-store-source.js';
import type { StoreSource } from './store-source.js';

export interface WorkerAppOptions {
  modelsDir: string;
  datasetsDir: string;
  threads?: number;
  bodyLimitBytes?: number;
  /** Most elements one input tensor may have (default DEFAULT_MAX_ELEMENTS). */
  maxElements?: number;
  /**
   * Every call but the health checks must carry this in the x-modeldock-worker-secret
   * header. Runtimes always set one; without it (a worker started by hand) the worker is open.
   */
  secret?: string;
  logger?: Logger;
  name?: string;
  /** Where model and dataset files come from; default: modelsDir and datasetsDir. */
  source?: StoreSource;
  /** How the worker measures its memory (memory-meter.ts); default: its rss. */
  memoryMeter?: MemoryMeter;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  invalid_input: 400,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  // A model's batching queue is full (its max_queue_size), or the bodies in flight fill
  // the body limit (request-budget.ts): try again shortly. The router passes the 503 on.
  too_many_requests: 503,
  // The router's store (remote-store-source.ts) refused, broke off, or sent a damaged file.
  store_unavailable: 503,
};

export interface WorkerApp {
  app: FastifyInstance;
  registry: ModelRegistry;
  /**
   * One inference of a loaded name, through its batcher and counted in the statistics as
   * the HTTP route's (gRPC's ModelInfer). `signal`: the caller is gone (it leaves the queue).
   */
  infer: (
    name: string,
    request: V2InferRequest,
    binary?: Uint8Array,
    signal?: AbortSignal,
  ) => Promise<InferResult>;
}

export async function buildWorkerApp(options: WorkerAppOptions): Promise<WorkerApp> {
  const source = options.source ?? new LocalStoreSource(options.modelsDir, options.datasetsDir);
  const models = new ModelStore(source, options.threads ?? 1);
  const datasets = new DatasetStore(source);
  const meter = options.memoryMeter ?? rssMeter;
  const registry = new ModelRegistry(models, meter);
  const stats = new InferenceStats();
  const bodyLimit = options.bodyLimitBytes ?? DEFAULT_WORKER_BODY_LIMIT;
  const limits = { maxElements: options.maxElements ?? DEFAULT_MAX_ELEMENTS };
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger as never } : {}),
    bodyLimit,
    // Per-request log lines would dominate the hot path; errors are logged by the handler.
    logController: new LogController({ disableRequestLogging: true }),
  });

  // Bodies are JSON, or — with the binary tensor extension (Inference-Header-Content-Length)
  // — a JSON header followed by raw tensor bytes, kept aside for the infer route.
  const binaryParts = new WeakMap<object, Uint8Array>();
  const parseBody = (request: FastifyRequest, body: Buffer) => {
    const header = request.headers['inference-header-content-length'];
    let json = body;
    if (header !== undefined) {
      const length = Number(header);
      if (!Number.isInteger(length) || length < 0 || length > body.length) {
        throw new InvalidInputError(
          `Inference-Header-Content-Length ${String(header).slice(0, 20)} does not fit a body of ${body.length} bytes`,
        );
      }
      json = body.subarray(0, length);
      binaryParts.set(request, body.subarray(length));
    } else if (request.headers['content-type']?.startsWith('application/octet-stream')) {
      throw new InvalidInputError('a binary body needs the Inference-Header-Content-Length header');
    }
    if (json.length === 0) return undefined;
    try {
      return JSON.parse(json.toString('utf8')) as unknown;
    } catch (error) {
      throw new InvalidInputError(`the body is not valid JSON: ${errorMessage(error)}`);
    }
  };
  app.removeContentTypeParser('application/json');
  // `*` also takes a body without Content-Type, which Triton clients send (tritonclient
  // posts JSON with none): JSON, or binary with Inference-Header-Content-Length.
  for (const type of ['application/json', 'application/octet-stream', '*']) {
    app.addContentTypeParser(type, { parseAs: 'buffer' }, async (request: FastifyRequest, body: Buffer) =>
      parseBody(request, body),
    );
  }

  if (options.secret) requireWorkerSecret(app, options.secret);

  // The body limit bounds the bodies in flight together, not each alone: concurrent
  // requests at the limit would otherwise multiply the worst-case cost (worker-limits.ts).
  // Counted on what arrives, chunked bodies included (request-budget.ts).
  const budget = new ByteBudget('worker', bodyLimit);
  installRequestBudget(app, () => ({ budget, costPerByte: 1 }));

  app.setErrorHandler((error, request, reply) => {
    if (isModeldockError(error)) {
      if (error instanceof TooManyRequestsError) {
        void reply.header('retry-after', String(error.retryAfterSeconds ?? 1));
      }
      return reply.code(STATUS[error.code] ?? 500).send({ error: error.message });
    }
    // The client left before its batch ran: nobody reads this (nginx's "client closed request").
    if (error instanceof CancelledError) return reply.code(499).send({ error: error.message });
    const status = (error as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      return reply.code(status).send({ error: (error as Error).message });
    }
    request.log.error({ err: error }, 'worker request failed');
    return reply.code(500).send({ error: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );
  app.addHook('onClose', () => registry.close());

  type NameParams = { Params: { name: string } };
  type VersionParams = { Params: { name: string; version?: string } };

  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async () => ({ ready: true }));
  app.get('/v2', async () => ({
    name: 'modeldock-worker',
    version: SERVER_VERSION,
    extensions: ['model_repository', 'model_configuration', 'statistics', 'binary_tensor_data', 'batch'],
  }));

  // `{"ready": true}` lists only the models ready for inference, as Triton does. A ready
  // model's entry also says what loading it measured (model-registry.ts), as memory_bytes.
  // The dataset each loaded model was loaded for (the router says, for shared workers):
  // with the model id it is what a router that lost its records rebuilds a job from.
  const datasetOf = new Map<string, string>();
  const indexEntry = (e: RegistryEntry) => ({
    name: e.name,
    version: MODEL_VERSION,
    state: e.state,
    reason: e.reason,
    ...(e.state === 'READY' ? { model_id: e.modelId } : {}),
    ...(e.state === 'READY' && datasetOf.has(e.name) ? { dataset: datasetOf.get(e.name) } : {}),
    ...(e.memoryBytes === undefined ? {} : { memory_bytes: e.memoryBytes }),
  });
  app.post<{ Body: { ready?: unknown } | undefined }>('/v2/repository/index', async (request) => {
    const entries = registry.entries();
    if (request.body?.ready === true) return entries.filter((e) => e.state === 'READY').map(indexEntry);
    const known = new Set(entries.map((e) => e.name));
    const available = (await models.list())
      .filter((id) => !known.has(id))
      .map((id) => ({ name: id, version: MODEL_VERSION, state: 'UNAVAILABLE', reason: 'not loaded' }));
    return [...entries.map(indexEntry), ...available];
  });

  app.post<NameParams & { Body: { parameters?: { model_id?: unknown; dataset?: unknown } } | undefined }>(
    '/v2/repository/models/:name/load',
    async (request) => {
      const name = validateId('name', request.params.name);
      const rawId = request.body?.parameters?.model_id;
      const modelId = validateId('model', rawId === undefined ? name : rawId);
      const rawDataset = request.body?.parameters?.dataset;
      const dataset = rawDataset === undefined ? undefined : validateId('dataset', rawDataset);
      const { model, alreadyLoaded } = await registry.load(name, modelId);
      if (dataset !== undefined) datasetOf.set(name, dataset);
      const worker = await meter.read();
      return {
        name,
        model_id: model.modelId,
        state: 'READY',
        load_ms: alreadyLoaded ? 0 : model.loadMs,
        // What the load measured, and the worker's memory after it: the router accounts by these.
        memory_bytes: registry.memoryByName()[name] ?? 0,
        worker_memory_bytes: worker.bytes,
        worker_memory_limit_bytes: worker.limitBytes,
      };
    },
  );

  app.post<NameParams>('/v2/repository/models/:name/unload', async (request) => {
    const name = validateId('name', request.params.name);
    const unloaded = await registry.unload(name);
    datasetOf.delete(name);
    // Its requests have finished (the unload waited for them): a shared worker sees
    // thousands of names come and go, and each one's statistics would stay forever.
    stats.forget(name);
    return { name, state: 'UNAVAILABLE', unloaded, worker_memory_bytes: (await meter.read()).bytes };
  });

  // Each model route also answers under /versions/1, the protocol's optional version
  // segment; a model has exactly one version here.
  const modelRoutes = (suffix: string) => [
    `/v2/models/:name${suffix}`,
    `/v2/models/:name/versions/:version${suffix}`,
  ];
  const servedName = (params: { name: string; version?: string }): string => {
    const name = validateId('name', params.name);
    if (params.version !== undefined && params.version !== MODEL_VERSION) {
      throw new NotFoundError(
        `model "${name}" has no version ${params.version.slice(0, 40)} (only ${MODEL_VERSION})`,
      );
    }
    return name;
  };

  for (const url of modelRoutes('')) {
    app.get<VersionParams>(url, async (request) => {
      const model = registry.get(servedName(request.params));
      return {
        name: model.name,
        versions: [MODEL_VERSION],
        platform: 'onnxruntime_onnx',
        inputs: model.inputs,
        outputs: model.outputs,
        parameters: {
          model_id: model.modelId,
          ...(model.manifest.description ? { description: model.manifest.description } : {}),
          ...(model.manifest.labels ? { labels: model.manifest.labels } : {}),
        },
      };
    });
  }

  for (const url of modelRoutes('/ready')) {
    app.get<VersionParams>(url, async (request, reply) => {
      const name = servedName(request.params);
      const ready = registry.isLoaded(name);
      return reply.code(ready ? 200 : 400).send({ name, ready });
    });
  }

  for (const url of modelRoutes('/config')) {
    app.get<VersionParams>(url, async (request) => modelConfig(registry.get(servedName(request.params))));
  }

  // Statistics of the loaded names (all of them, or one: 404 when it is not loaded).
  app.get('/v2/models/stats', async () => stats.report(registry.names()));
  for (const url of modelRoutes('/stats')) {
    app.get<VersionParams>(url, async (request) =>
      stats.report([registry.get(servedName(request.params)).name]),
    );
  }

  // Each loaded model's dynamic batcher (batcher.ts), made at its first request.
  const batchers = new WeakMap<LoadedModel, Batcher<PreparedRequest, Outcome>>();
  /** How many inferences a request is (statistics): its rows, for a model that batches. */
  const inferencesOf = (model: LoadedModel) => (item: PreparedRequest) =>
    model.batching.maxBatchSize > 0 ? (item.rows ?? 1) : 1;
  const run = async (model: LoadedModel, items: PreparedRequest[]): Promise<Outcome[]> => {
    const { outcomes, executions } = await runBatch(model, items, inferencesOf(model));
    for (const execution of executions) stats.executed(model.name, execution.rows, execution);
    return outcomes;
  };
  const batcherOf = (model: LoadedModel, dynamic: NonNullable<LoadedModel['batching']['dynamic']>) => {
    let batcher = batchers.get(model);
    if (!batcher) {
      const policy = {
        maxBatchSize: model.batching.maxBatchSize,
        preferredBatchSizes: dynamic.preferredBatchSizes,
        maxQueueDelayMs: dynamic.maxQueueDelayUs / 1000,
        adaptive: dynamic.adaptive,
        maxQueueSize: dynamic.maxQueueSize,
      };
      batcher = new Batcher(policy, (items: PreparedRequest[]) => run(model, items));
      batchers.set(model, batcher);
    }
    return batcher;
  };

  // One inference, counted in the statistics: HTTP's infer route and gRPC's ModelInfer.
  // Checked and decoded first, so a request that fails validation fails alone; then run
  // alone, or queued in its model's batcher to run with others of the same key.
  const inferCounted = async (
    name: string,
    body: V2InferRequest,
    binaryPart?: Uint8Array,
    signal?: AbortSignal,
  ): Promise<InferResult> => {
    const received = performance.now();
    let result: InferResult;
    try {
      result = await registry.use(name, async (model) => {
        const prepared = prepareRequest(model, body, binaryPart, true, limits);
        const decoded = performance.now();
        const dynamic = model.batching.dynamic;
        let outcome: Outcome;
        let dispatchedAt = decoded;
        if (dynamic) {
          // No key: inputs without one shared first dimension, or none at all, run alone.
          const key = prepared.rows !== undefined && prepared.rows > 0 ? prepared.batchKey : null;
          const batched = await batcherOf(model, dynamic).submit(prepared, key, prepared.rows ?? 0, signal);
          outcome = batched.result;
          dispatchedAt = batched.dispatchedAt;
        } else {
          [outcome] = (await run(model, [prepared])) as [Outcome];
        }
        if ('error' in outcome) throw outcome.error;
        const cut = performance.now();
        const answered = answer(model, prepared, outcome.tensors);
        const { execution } = outcome;
        stats.succeeded(name, elapsedNs(received, performance.now()), {
          queueNs: elapsedNs(decoded, dispatchedAt),
          inputNs: elapsedNs(received, decoded) + execution.inputNs,
          inferNs: execution.inferNs,
          outputNs: execution.outputNs + elapsedNs(cut, performance.now()),
        });
        return answered;
      });
    } catch (error) {
      // A request for a name that is not served is no model's failure.
      if (registry.isLoaded(name)) stats.failed(name, elapsedNs(received, performance.now()));
      throw error;
    }
    return result;
  };

  for (const url of modelRoutes('/infer')) {
    app.post<VersionParams & { Body: V2InferRequest }>(url, async (request, reply) => {
      const name = servedName(request.params);
      // A client that hangs up takes its request out of the batcher's queue.
      const gone = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) gone.abort();
      });
      const { response, binary } = await inferCounted(
        name,
        request.body,
        binaryParts.get(request),
        gone.signal,
      );
      if (binary.length === 0) return response;
      const json = Buffer.from(JSON.stringify(response));
      return reply
        .header('inference-header-content-length', json.length)
        .type('application/octet-stream')
        .send(Buffer.concat([json, ...binary]));
    });
  }

  app.post<NameParams & { Body: { dataset?: unknown } }>('/v2/models/:name/batch', async (request) => {
    const name = validateId('name', request.params.name);
    registry.get(name); // not loaded: 404 before the dataset is read
    const dataset = await datasets.read(validateId('dataset', request.body?.dataset));
    return registry.use(name, (model) => inferDataset(model, dataset));
  });

  app.get('/v2/worker/stats', async () => {
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    const measured = await meter.read();
    return {
      name: options.name ?? 'worker',
      rss_bytes: memory.rss,
      // What the kernel measures (memory-meter.ts): the cgroup's working set, or the rss.
      memory_bytes: measured.bytes,
      memory_limit_bytes: measured.limitBytes,
      memory_source: measured.source,
      // What each loaded model's load measured; unloading it gives that back.
      model_memory_bytes: registry.memoryByName(),
      // CPU time since the worker started (user + system): runtimes without a metrics API use it.
      cpu_seconds: (cpu.user + cpu.system) / 1e6,
      heap_used_bytes: memory.heapUsed,
      external_bytes: memory.external,
      body_limit_bytes: bodyLimit,
      max_elements: limits.maxElements,
      loaded: registry.names(),
      // Requests waiting in each loaded model's batching queue (batcher.ts).
      queued: Object.fromEntries(
        registry.names().map((name) => [name, batchers.get(registry.get(name))?.waiting ?? 0]),
      ),
    };
  });

  await app.ready();
  return { app, registry, infer: inferCounted };
}
