/**
 * The KServe v2 / Triton gRPC inference service (`inference.GRPCInferenceService`, the
 * definition in inference.proto) on the router, with the job id as the model name, as
 * HTTP `/v2` does: ModelInfer is routed to the job's worker (loaded on demand) and
 * translated to the worker's HTTP binary tensor extension (infer-translation.ts), so
 * workers speak one protocol and the router parses no tensor (a server without that
 * extension gets JSON tensors instead, json-tensors.ts); the rest answers from the
 * store and the workers like the HTTP routes.
 *
 * gRPC behaviour users expect: a client's deadline or cancellation cancels the worker
 * request; messages over the size limit are refused with RESOURCE_EXHAUSTED; every
 * failure is a status (grpc-status.ts), never a crash.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  InvalidInputError,
  NotFoundError,
  WorkerError,
  errorMessage,
  isModeldockError,
} from '../../errors.js';
import type { Lifecycle, RouteEntry } from '../../lifecycle/lifecycle.js';
import type { Metrics } from '../../observability/metrics.js';
import type { WorkerClient } from '../../runtime/worker-client.js';
import type { Store } from '../../store/store.js';
import {
  ROUTER_EXTENSIONS,
  allModelStatistics,
  isJobReady,
  repositoryIndex,
  type ProtocolDeps,
} from '../inference-protocol.js';
import {
  fromWorkerInferAnswer,
  toWorkerInferBody,
  type GrpcInferRequest,
} from '../../inference-grpc/infer-translation.js';
import {
  binaryRequestToJson,
  jsonAnswerToBinary,
  type JsonInferAnswer,
} from '../../inference-grpc/json-tensors.js';
import { toGrpcStatus } from '../../inference-grpc/grpc-status.js';
import { loadInferenceService } from '../../inference-grpc/service-definition.js';
import { httpAnswerError } from '../../inference-grpc/http-answer.js';
import { boundedServerOptions, callGuard, metadataText } from '../../inference-grpc/call-guard.js';
import { CallEndedError, forwardToWorker, type WorkerAnswer } from './worker-forward.js';
import type { ReadinessProbe } from '../readiness.js';
import { asCaller } from '../../lifecycle/caller.js';

/**
 * Where API keys plug in: called with the call's `authorization` metadata (undefined
 * when absent) and whether the RPC is inference or administration; throws a typed error
 * to refuse (see grpc-status.ts for its status).
 */
/** Throws (UnauthorizedError / ForbiddenError) to refuse; returns the caller's id, which the call's operations record. */
export type GrpcAuthorizer = (authorization: string | undefined, scope: 'infer' | 'admin') => string;

export interface GrpcDeps {
  lifecycle: Pick<
    Lifecycle,
    | 'tryAcquireRoute'
    | 'acquireRoute'
    | 'healLostModel'
    | 'workerDidNotAnswer'
    | 'deployLoad'
    | 'deployUnload'
  >;
  workers: Pick<WorkerClient, 'pool' | 'modelJson'>;
  store: Pick<Store, 'listJobs' | 'listServers'>;
  metrics: Pick<Metrics, 'observeInference' | 'refusedRequests'>;
  logger: Logger;
  version: string;
  /** The router's readiness (store and runtime answer), as /readyz answers it. */
  readiness: ReadinessProbe;
  authorize?: GrpcAuthorizer;
}

export interface GrpcOptions {
  host: string;
  port: number;
  /** Largest message received or sent, in bytes (the HTTP body limit). */
  maxMessageBytes: number;
  /** Most calls at once on one connection (HTTP/2 streams). */
  maxStreamsPerConnection: number;
  /** Most calls at once from one remote address. */
  maxCallsPerPeer: number;
  /** How long a call's request message may take to arrive. */
  messageTimeoutMs: number;
}

type Scope = 'open' | 'infer' | 'admin';

/**
 * Who may call each RPC; every RPC not named here needs the infer scope. Health stays
 * open, as /v2/health/* does on HTTP (probes carry no key); loading and unloading are
 * administration, as on HTTP.
 */
const RPC_SCOPES: Partial<Record<string, Scope>> = {
  ServerLive: 'open',
  ServerReady: 'open',
  RepositoryModelLoad: 'admin',
  RepositoryModelUnload: 'admin',
};

function scopeOf(rpc: string): Scope {
  return RPC_SCOPES[rpc] ?? 'infer';
}

export { PROTO_FILE } from '../../inference-grpc/service-definition.js';

const MODEL_VERSION = '1';

/** The model name and version of a request: the job id, and no version or version 1. */
function modelOf(name: unknown, version: unknown): string {
  if (typeof name !== 'string' || name === '') throw new InvalidInputError('the request names no model');
  if (version !== '' && version !== undefined && version !== MODEL_VERSION) {
    throw new NotFoundError(
      `model "${name}" has no version ${String(version).slice(0, 40)} (only ${MODEL_VERSION})`,
    );
  }
  return name;
}

type Handler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>;

export class GrpcInferenceServer {
  private readonly server: grpc.Server;

  private constructor(
    private readonly deps: GrpcDeps,
    options: GrpcOptions,
  ) {
    this.server = new grpc.Server({
      ...boundedServerOptions({
        maxMessageBytes: options.maxMessageBytes,
        maxStreamsPerConnection: options.maxStreamsPerConnection,
      }),
      // The key is checked when the metadata arrives, before a byte of the message is read.
      interceptors: [
        callGuard({
          admit: (metadata, path) => {
            const scope = scopeOf(path.slice(path.lastIndexOf('/') + 1));
            if (scope === 'open' || !deps.authorize) return;
            deps.authorize(metadataText(metadata, 'authorization'), scope);
          },
          maxCallsPerPeer: options.maxCallsPerPeer,
          messageTimeoutMs: options.messageTimeoutMs,
          onRefused: (reason, peer) => {
            deps.metrics.refusedRequests.inc({ protocol: 'grpc', reason });
            deps.logger.debug({ reason, peer }, 'gRPC call refused');
          },
        }),
      ],
    });
  }

  /** Bind and serve; resolves with the bound port (useful with port 0 in tests). */
  static async start(
    deps: GrpcDeps,
    options: GrpcOptions,
  ): Promise<{ server: GrpcInferenceServer; port: number }> {
    const instance = new GrpcInferenceServer(deps, options);
    instance.server.addService(loadInferenceService(), instance.handlers());
    const address = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
    const port = await new Promise<number>((resolve, reject) =>
      instance.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    return { server: instance, port };
  }

  /** Stop accepting calls; calls in progress get a moment to finish, then are cut. */
  async close(graceMs = 5_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private handlers(): grpc.UntypedServiceImplementation {
    const { deps } = this;
    const protocol: ProtocolDeps = deps;
    const modelJson = async <T>(name: string, suffix: string, signal: AbortSignal): Promise<T> => {
      const route = await deps.lifecycle.acquireRoute(name);
      try {
        return await deps.workers.modelJson<T>(route.endpoint, `${route.modelPath}${suffix}`, signal);
      } finally {
        route.release();
      }
    };
    return {
      ServerLive: this.unary('ServerLive', async () => ({ live: true })),
      ServerReady: this.unary('ServerReady', async () => ({ ready: (await deps.readiness()).ready })),
      ServerMetadata: this.unary('ServerMetadata', async () => ({
        name: 'modeldock',
        version: deps.version,
        extensions: ROUTER_EXTENSIONS,
      })),
      ModelReady: this.unary<{ name: string; version: string }, object>('ModelReady', async (request) => ({
        ready: await isJobReady(deps.store, modelOf(request.name, request.version)),
      })),
      ModelMetadata: this.unary<{ name: string; version: string }, object>(
        'ModelMetadata',
        async (request, call) => modelJson(modelOf(request.name, request.version), '', signalOf(call)),
      ),
      ModelConfig: this.unary<{ name: string; version: string }, object>(
        'ModelConfig',
        async (request, call) => ({
          config: await modelJson(modelOf(request.name, request.version), '/config', signalOf(call)),
        }),
      ),
      ModelStatistics: this.unary<{ name: string; version: string }, object>(
        'ModelStatistics',
        async (request, call) =>
          request.name === ''
            ? allModelStatistics(protocol)
            : modelJson(modelOf(request.name, request.version), '/stats', signalOf(call)),
      ),
      // The index is the infer scope's, as POST /v2/repository/index is on HTTP.
      RepositoryIndex: this.unary<{ repository_name: string; ready: boolean }, object>(
        'RepositoryIndex',
        async (request) => {
          oneRepository(request.repository_name);
          return { models: await repositoryIndex(deps.store, { readyOnly: request.ready }) };
        },
      ),
      // Loading takes the job's own model; Triton's config/file overrides do not apply.
      RepositoryModelLoad: this.unary<{ repository_name: string; model_name: string }, object>(
        'RepositoryModelLoad',
        async (request) => {
          oneRepository(request.repository_name);
          await deps.lifecycle.deployLoad({ jobId: modelOf(request.model_name, '') });
          return {};
        },
      ),
      RepositoryModelUnload: this.unary<{ repository_name: string; model_name: string }, object>(
        'RepositoryModelUnload',
        async (request) => {
          oneRepository(request.repository_name);
          await deps.lifecycle.deployUnload({ jobId: modelOf(request.model_name, '') });
          return {};
        },
      ),
      ModelInfer: this.unary<GrpcInferRequest, object>('ModelInfer', (request, call) =>
        this.infer(request, call),
      ),
    };
  }

  /**
   * One unary RPC: the handler, as its caller; every failure becomes a status. The call
   * guard admitted the key already; asked again here for the caller's id.
   */
  private unary<Req, Res>(rpc: string, handler: Handler<Req, Res>): grpc.handleUnaryCall<Req, Res> {
    const scope = scopeOf(rpc);
    return (call, callback) => {
      // Not an async function: its promise would adopt the handler's, two turns later.
      const run = (): Promise<Res> => {
        try {
          let caller = 'anonymous';
          if (this.deps.authorize && scope !== 'open') {
            caller = this.deps.authorize(metadataText(call.metadata, 'authorization'), scope);
          }
          return asCaller(caller, () => handler(call.request, call));
        } catch (error) {
          return Promise.reject(error);
        }
      };
      run().then(
        (response) => callback(null, response),
        (error: unknown) => {
          const status = toGrpcStatus(error);
          // A call that was cancelled or timed out has its status already; nothing to log.
          if (status.code === grpc.status.INTERNAL && !call.cancelled) {
            this.deps.logger.error({ err: error, rpc: call.getPath() }, 'gRPC call failed');
          }
          callback(status);
        },
      );
    };
  }

  /** ModelInfer: to the job's worker as a binary-extension request, the answer back as raw outputs. */
  private async infer(
    request: GrpcInferRequest,
    call: grpc.ServerUnaryCall<GrpcInferRequest, object>,
  ): Promise<object> {
    const started = performance.now();
    const jobId = modelOf(request.model_name, request.model_version);
    const { body, headerLength } = toWorkerInferBody(request);
    // A ready job's route at once, as the HTTP hot path takes it; else wait for a job
    // being loaded (as HTTP does). Counted on the route until answered.
    let route = this.deps.lifecycle.tryAcquireRoute(jobId) ?? (await this.deps.lifecycle.acquireRoute(jobId));
    // A server without the binary tensor extension (MLServer) gets the request as JSON
    // tensors, translated once; its JSON answer is turned into raw outputs the same way.
    let jsonBody: string | undefined;
    let answeredJson = false;
    const send = (target: RouteEntry) => {
      answeredJson = !target.binaryTensors;
      return forwardToWorker(
        this.deps.workers.pool(target.endpoint),
        answeredJson
          ? {
              path: `${target.modelPath}/infer`,
              headers: { 'content-type': 'application/json' },
              body: Buffer.from((jsonBody ??= JSON.stringify(binaryRequestToJson(body, headerLength).json))),
            }
          : {
              path: `${target.modelPath}/infer`,
              headers: {
                'content-type': 'application/octet-stream',
                'inference-header-content-length': String(headerLength),
              },
              body,
            },
        call,
      );
    };
    let answer: WorkerAnswer;
    try {
      answer = await send(route);
      if (answer.statusCode === 404) {
        // The worker does not have the model the router holds as ready (it lost it, or
        // something unloaded it behind the router's back): healed, then sent once more,
        // as the HTTP path does. The fresh route comes taken; the stale one is let go.
        const fresh = await this.deps.lifecycle.healLostModel(route);
        route.release();
        route = fresh;
        answer = await send(route);
      }
    } catch (error) {
      // A caller that left (CallEndedError: cancelled, or its deadline passed) says nothing
      // about the worker, nor does a heal's refusal: only a worker that did not answer does.
      if (!(error instanceof Error) || isModeldockError(error)) throw error;
      this.deps.lifecycle.workerDidNotAnswer(route, error);
      this.deps.metrics.observeInference(jobId, 502, (performance.now() - started) / 1000);
      throw new WorkerError(`worker of job ${jobId} did not answer: ${errorMessage(error)}`, {
        cause: error,
      });
    } finally {
      route.release();
    }
    this.deps.metrics.observeInference(jobId, answer.statusCode, (performance.now() - started) / 1000);
    if (answer.statusCode !== 200) throw httpAnswerError(answer.statusCode, answer.bytes);
    if (answeredJson) {
      const binary = jsonAnswerToBinary(
        JSON.parse(answer.bytes.toString('utf8')) as JsonInferAnswer,
        () => true,
      );
      return fromWorkerInferAnswer(binary.body, binary.headerLength);
    }
    const length = Number(answer.headers['inference-header-content-length']);
    return fromWorkerInferAnswer(answer.bytes, Number.isInteger(length) ? length : undefined);
  }
}

/** modeldock has one model repository; a name other than the default is no repository here. */
function oneRepository(name: string): void {
  if (name)
    throw new NotFoundError(`no model repository "${name.slice(0, 60)}": leave repository_name empty`);
}

/**
 * Aborted when the client cancels the call or its deadline passes, so a worker request
 * made for it (metadata, config, statistics) ends with it. The deadline's timer does not
 * keep the process up and does nothing once the call is answered.
 */
function signalOf(call: grpc.ServerUnaryCall<unknown, unknown>): AbortSignal {
  const controller = new AbortController();
  call.once('cancelled', () => controller.abort(new CallEndedError('the call was cancelled')));
  const deadline = Number(call.getDeadline());
  if (Number.isFinite(deadline)) {
    const timer = setTimeout(
      () => controller.abort(new CallEndedError('the call’s deadline passed')),
      Math.max(0, deadline - Date.now()),
    );
    timer.unref();
    controller.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  }
  return controller.signal;
}
