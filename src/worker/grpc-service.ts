/**
 * The worker's own KServe v2 / Triton gRPC service (`inference.GRPCInferenceService`), on
 * the same port as its HTTP API (protocol-listener.ts): a Triton gRPC client can call a
 * worker directly, as it can over HTTP, under the names the worker has loaded.
 *
 * ModelInfer runs the model in-process, as the HTTP infer route does (the same counted
 * inference, so the statistics cover both protocols): typed contents and
 * `raw_input_contents` in, `raw_output_contents` out. The other calls are answered by the
 * HTTP routes themselves (Fastify's in-process `inject`): one implementation of each,
 * whose JSON the gRPC messages take field by field.
 *
 * The worker's secret guards gRPC as it guards HTTP, as `x-modeldock-worker-secret`
 * metadata, checked when the metadata arrives, before a byte of the message is read
 * (call-guard.ts); health stays open for probes. Deadlines and cancellation end the call at
 * the client (grpc-js answers DEADLINE_EXCEEDED / CANCELLED) and take a ModelInfer still
 * waiting in its model's batching queue out of it; a model run in progress finishes and
 * is counted, as over HTTP.
 */
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { InvalidInputError, NotFoundError, UnauthorizedError } from '../errors.js';
import { toGrpcStatus } from '../inference-grpc/grpc-status.js';
import { httpAnswerError } from '../inference-grpc/http-answer.js';
import {
  fromBinaryInferAnswer,
  toBinaryInferRequest,
  type GrpcInferRequest,
} from '../inference-grpc/infer-translation.js';
import { loadInferenceService } from '../inference-grpc/service-definition.js';
import { boundedServerOptions, callGuard, metadataText } from '../inference-grpc/call-guard.js';
import { WORKER_SECRET_HEADER, secretMatches } from '../worker-secret.js';
import type { WorkerApp } from './app.js';
import { MODEL_VERSION, type V2InferRequest } from './inference.js';

export interface WorkerGrpcOptions {
  /** The worker's HTTP API: its routes answer every call but ModelInfer. */
  app: FastifyInstance;
  infer: WorkerApp['infer'];
  /** As the HTTP API's: every call but health must carry it. */
  secret?: string;
  /** Largest message received or sent (the worker's body limit). */
  maxMessageBytes: number;
  logger?: Logger;
}

/**
 * The worker's gRPC bounds. Its one legitimate caller is its router (which speaks HTTP to
 * it); these only keep a direct client from holding more than a few messages at once.
 */
export const WORKER_GRPC_LIMITS = {
  streamsPerConnection: 64,
  callsPerPeer: 64,
  messageTimeoutMs: 60_000,
};

/** Health answers anyone: engines and probes hold no secret. */
const OPEN_RPCS = new Set(['ServerLive', 'ServerReady']);

interface ModelRequest {
  name: string;
  version: string;
}

type Json = Record<string, unknown>;

/** The gRPC server, not bound to a port: connections reach it through `injector`. */
export function workerGrpcServer(options: WorkerGrpcOptions): {
  server: grpc.Server;
  injector: grpc.ConnectionInjector;
} {
  const { secret } = options;
  const server = new grpc.Server({
    ...boundedServerOptions({
      maxMessageBytes: options.maxMessageBytes,
      maxStreamsPerConnection: WORKER_GRPC_LIMITS.streamsPerConnection,
    }),
    interceptors: [
      callGuard({
        admit: (metadata, path) => {
          if (!secret || OPEN_RPCS.has(path.slice(path.lastIndexOf('/') + 1))) return;
          if (secretMatches(secret, metadataText(metadata, WORKER_SECRET_HEADER))) return;
          throw new UnauthorizedError(
            `this worker answers only its router: missing or wrong ${WORKER_SECRET_HEADER} metadata`,
          );
        },
        maxCallsPerPeer: WORKER_GRPC_LIMITS.callsPerPeer,
        messageTimeoutMs: WORKER_GRPC_LIMITS.messageTimeoutMs,
        // Strangers knocking are not worth a log line each (log amplification).
        onRefused: (reason, peer) => options.logger?.debug({ reason, peer }, 'gRPC call refused'),
      }),
    ],
  });
  server.addService(loadInferenceService(), handlers(options));
  return { server, injector: server.createConnectionInjector(grpc.ServerCredentials.createInsecure()) };
}

function handlers(options: WorkerGrpcOptions): grpc.UntypedServiceImplementation {
  const { app, secret } = options;
  /** One of the worker's HTTP routes, answered in-process; an error answer throws its typed error. */
  const route = async (method: 'GET' | 'POST', url: string, payload?: Json): Promise<object> => {
    const response = await app.inject({
      method,
      url,
      headers: secret ? { [WORKER_SECRET_HEADER]: secret } : {},
      ...(payload ? { payload } : {}),
    });
    if (response.statusCode !== 200) throw httpAnswerError(response.statusCode, response.body);
    return response.json() as object;
  };
  const modelUrl = (request: ModelRequest, suffix = '') =>
    `/v2/models/${encodeURIComponent(request.name)}${request.version ? `/versions/${encodeURIComponent(request.version)}` : ''}${suffix}`;

  /**
   * One unary RPC (the call guard admitted it): every failure becomes a status. `signal`
   * aborts when the client cancels or its deadline passes.
   */
  const unary = <Req>(
    handler: (request: Req, signal: AbortSignal) => Promise<object>,
  ): grpc.handleUnaryCall<Req, object> => {
    return (call, callback) => {
      const gone = new AbortController();
      call.once('cancelled', () => gone.abort());
      const run = async () => handler(call.request, gone.signal);
      run().then(
        (response) => callback(null, response),
        (error: unknown) => {
          const status = toGrpcStatus(error);
          if (status.code === grpc.status.INTERNAL && !call.cancelled) {
            options.logger?.error({ err: error, rpc: call.getPath() }, 'gRPC call failed');
          }
          callback(status);
        },
      );
    };
  };

  return {
    ServerLive: unary(async () => ({ live: true })),
    ServerReady: unary(async () => ({ ready: true })),
    ServerMetadata: unary(() => route('GET', '/v2')),
    ModelReady: unary<ModelRequest>(async (request) => {
      // HTTP answers a name not loaded with 400 {"ready": false}; gRPC with ready false.
      const response = await app.inject({
        method: 'GET',
        url: modelUrl(named(request), '/ready'),
        headers: secret ? { [WORKER_SECRET_HEADER]: secret } : {},
      });
      if (response.statusCode !== 200 && response.statusCode !== 400) {
        throw httpAnswerError(response.statusCode, response.body);
      }
      return { ready: (response.json() as { ready?: boolean }).ready === true };
    }),
    ModelMetadata: unary<ModelRequest>((request) => route('GET', modelUrl(named(request)))),
    ModelConfig: unary<ModelRequest>(async (request) => ({
      config: await route('GET', modelUrl(named(request), '/config')),
    })),
    ModelStatistics: unary<ModelRequest>((request) =>
      route('GET', request.name ? modelUrl(request, '/stats') : '/v2/models/stats'),
    ),
    RepositoryIndex: unary<{ repository_name: string; ready: boolean }>(async (request) => {
      oneRepository(request.repository_name);
      return { models: await route('POST', '/v2/repository/index', { ready: request.ready }) };
    }),
    // Triton's `config` and file overrides do not apply; `model_id` loads another model under the name.
    RepositoryModelLoad: unary<{
      repository_name: string;
      model_name: string;
      parameters?: Record<string, { string_param?: string }>;
    }>(async (request) => {
      oneRepository(request.repository_name);
      const modelId = request.parameters?.model_id?.string_param;
      await route(
        'POST',
        `/v2/repository/models/${encodeURIComponent(request.model_name)}/load`,
        modelId ? { parameters: { model_id: modelId } } : {},
      );
      return {};
    }),
    RepositoryModelUnload: unary<{ repository_name: string; model_name: string }>(async (request) => {
      oneRepository(request.repository_name);
      await route('POST', `/v2/repository/models/${encodeURIComponent(request.model_name)}/unload`, {});
      return {};
    }),
    ModelInfer: unary<GrpcInferRequest>(async (request, signal) => {
      const name = named({ name: request.model_name, version: request.model_version });
      if (request.model_version && request.model_version !== MODEL_VERSION) {
        throw new NotFoundError(
          `model "${name.name}" has no version ${request.model_version.slice(0, 40)} (only ${MODEL_VERSION})`,
        );
      }
      const { header, bytes } = toBinaryInferRequest(request);
      const { response, binary } = await options.infer(
        name.name,
        // Inputs with binary_data_size carry no "data": prepareRequest reads their bytes.
        header as unknown as V2InferRequest,
        bytes.length === 1 ? bytes[0] : Buffer.concat(bytes),
        signal,
      );
      let next = 0;
      return fromBinaryInferAnswer(
        response as Parameters<typeof fromBinaryInferAnswer>[0],
        () => binary[next++]!,
      );
    }),
  };
}

function named(request: ModelRequest): ModelRequest {
  if (typeof request.name !== 'string' || request.name === '') {
    throw new InvalidInputError('the request names no model');
  }
  return request;
}

/** The worker has one model repository; a name other than the default is no repository here. */
function oneRepository(name: string): void {
  if (name)
    throw new NotFoundError(`no model repository "${name.slice(0, 60)}": leave repository_name empty`);
}
