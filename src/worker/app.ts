/**
 * The inference worker's HTTP API: the Open Inference Protocol (KServe v2 / Triton HTTP)
 * with the model-repository extension, plus batch inference over a dataset (TEMP) and
 * memory statistics. Built without listening, so tests call it in-process.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type ErrorCode, isModeldockError } from '../errors.js';
import { validateId } from '../ids.js';
import { DatasetStore } from './dataset-store.js';
import { infer, inferDataset, type V2InferRequest } from './inference.js';
import { ModelRegistry } from './model-registry.js';
import { ModelStore } from './model-store.js';

export interface WorkerAppOptions {
  modelsDir: string;
  datasetsDir: string;
  threads?: number;
  bodyLimitBytes?: number;
  logger?: Logger;
  name?: string;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  invalid_input: 400,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
};

export interface WorkerApp {
  app: FastifyInstance;
  registry: ModelRegistry;
}

export async function buildWorkerApp(options: WorkerAppOptions): Promise<WorkerApp> {
  const models = new ModelStore(options.modelsDir, options.threads ?? 1);
  const datasets = new DatasetStore(options.datasetsDir);
  const registry = new ModelRegistry(models);
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger as never } : {}),
    bodyLimit: options.bodyLimitBytes ?? 256 * 1024 * 1024,
    // Per-request log lines would dominate the hot path; errors are logged by the handler.
    logController: new LogController({ disableRequestLogging: true }),
  });

  app.setErrorHandler((error, request, reply) => {
    if (isModeldockError(error)) return reply.code(STATUS[error.code] ?? 500).send({ error: error.message });
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

  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async () => ({ ready: true }));
  app.get('/v2', async () => ({
    name: 'modeldock-worker',
    version: '1',
    extensions: ['model_repository', 'batch'],
  }));

  app.post('/v2/repository/index', async () => {
    const entries = registry.entries();
    const known = new Set(entries.map((e) => e.name));
    const available = (await models.list())
      .filter((id) => !known.has(id))
      .map((id) => ({ name: id, version: '1', state: 'UNAVAILABLE', reason: 'not loaded' }));
    return [
      ...entries.map((e) => ({ name: e.name, version: '1', state: e.state, reason: e.reason })),
      ...available,
    ];
  });

  app.post<NameParams & { Body: { parameters?: { model_id?: unknown } } | undefined }>(
    '/v2/repository/models/:name/load',
    async (request) => {
      const name = validateId('name', request.params.name);
      const rawId = request.body?.parameters?.model_id;
      const modelId = validateId('model', rawId === undefined ? name : rawId);
      const { model, alreadyLoaded } = await registry.load(name, modelId);
      return { name, model_id: model.modelId, state: 'READY', load_ms: alreadyLoaded ? 0 : model.loadMs };
    },
  );

  app.post<NameParams>('/v2/repository/models/:name/unload', async (request) => {
    const name = validateId('name', request.params.name);
    const unloaded = await registry.unload(name);
    return { name, state: 'UNAVAILABLE', unloaded };
  });

  app.get<NameParams>('/v2/models/:name', async (request) => {
    const model = registry.get(validateId('name', request.params.name));
    return {
      name: model.name,
      versions: ['1'],
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

  app.get<NameParams>('/v2/models/:name/ready', async (request, reply) => {
    const name = validateId('name', request.params.name);
    const ready = registry.isLoaded(name);
    return reply.code(ready ? 200 : 400).send({ name, ready });
  });

  app.post<NameParams & { Body: V2InferRequest }>('/v2/models/:name/infer', async (request) => {
    const name = validateId('name', request.params.name);
    return registry.use(name, (model) => infer(model, request.body));
  });

  app.post<NameParams & { Body: { dataset?: unknown } }>('/v2/models/:name/batch', async (request) => {
    const name = validateId('name', request.params.name);
    registry.get(name); // not loaded: 404 before the dataset is read
    const dataset = await datasets.read(validateId('dataset', request.body?.dataset));
    return registry.use(name, (model) => inferDataset(model, dataset));
  });

  app.get('/v2/worker/stats', async () => {
    const memory = process.memoryUsage();
    return {
      name: options.name ?? 'worker',
      rss_bytes: memory.rss,
      heap_used_bytes: memory.heapUsed,
      external_bytes: memory.external,
      loaded: registry.names(),
    };
  });

  await app.ready();
  return { app, registry };
}
