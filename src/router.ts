/**
 * Wires one router from its parts. It receives concrete Store and Runtime instances
 * (only the entry point, src/cli/backends.ts, chooses them) and owns their life:
 * start-up order, graceful shutdown.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './api/app.js';
import { KeyRing } from './api/auth.js';
import { GrpcInferenceServer } from './api/grpc/grpc-server.js';
import { readinessProbe } from './api/readiness.js';
import { readKeys, type Config } from './config.js';
import { ForbiddenError, RuntimeUnavailableError, UnauthorizedError, errorMessage } from './errors.js';
import { Catalog } from './lifecycle/catalog.js';
import { ServingRuntimes } from './lifecycle/serving-runtimes.js';
import { EventBus } from './lifecycle/event-bus.js';
import { Lifecycle } from './lifecycle/lifecycle.js';
import { Reconciler } from './lifecycle/reconciler.js';
import { Metrics } from './observability/metrics.js';
import type { Runtime } from './runtime/runtime.js';
import { WorkerClient } from './runtime/worker-client.js';
import type { Store } from './store/store.js';
import { VERSION } from './version.js';

export interface RouterParts {
  config: Config;
  store: Store;
  runtime: Runtime;
  logger: Logger;
}

export class Router {
  private grpc: GrpcInferenceServer | undefined;
  /** The port the gRPC inference service listens on, once listening (undefined when off). */
  grpcPort: number | undefined;

  private constructor(
    readonly app: FastifyInstance,
    readonly lifecycle: Lifecycle,
    readonly reconciler: Reconciler,
    readonly store: Store,
    readonly runtime: Runtime,
    readonly workers: WorkerClient,
    readonly events: EventBus,
    readonly metrics: Metrics,
    /** The API keys in force; `reloadKeys` swaps them (SIGHUP). */
    readonly keys: KeyRing,
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  /** Build everything and reconcile once; does not listen (tests use `app.inject`). */
  static async create(parts: RouterParts, options: { prepareRuntime?: boolean } = {}): Promise<Router> {
    const { config, store, runtime, logger } = parts;
    // Keys first: a key file that cannot be read stops the start before anything is touched.
    const keys = new KeyRing(config.auth.mode === 'keys' ? readKeys(config.auth) : undefined);
    await store.init();
    if (options.prepareRuntime ?? true) {
      try {
        await runtime.prepare((line) => logger.info({ progress: line.trimEnd() }, 'preparing runtime'));
      } catch (error) {
        // Without an engine the router still serves reads and answers operations with 503.
        if (!(error instanceof RuntimeUnavailableError)) throw error;
        logger.warn(
          { err: errorMessage(error) },
          'runtime unavailable at start-up; operations answer 503 until it is back',
        );
      }
    }
    const metrics = new Metrics();
    const events = new EventBus();
    const workers = new WorkerClient({ secretOf: (endpoint) => runtime.workerSecret?.(endpoint) });
    const catalog = new Catalog(
      config.modelsDir,
      config.datasetsDir,
      ServingRuntimes.load(config.runtimesDir, runtime.kind, {
        images: { mlserver: config.mlserverImage, triton: config.tritonImage },
      }),
    );
    const lifecycle = new Lifecycle({
      store,
      runtime,
      workers,
      catalog,
      metrics,
      events,
      logger,
      options: {
        instance: config.instance,
        idleUnloadMs: config.idleUnloadMs,
        maxLoadedModels: config.maxLoadedModels,
        memoryBudgetBytes: config.memoryBudgetBytes,
        warmPoolSize: config.warmPoolSize,
        warmPoolRuntimes: config.warmPoolRuntimes,
        drainTimeoutMs: config.drainTimeoutMs,
        loadWaitMs: config.loadWaitMs,
        scaling: {
          target: config.scaleTarget,
          upDelayMs: config.scaleUpDelayMs,
          downDelayMs: config.scaleDownDelayMs,
        },
        readyTimeoutMs: config.readyTimeoutMs,
        shared: {
          placement: config.shared.placement,
          jobsPerWorker: config.shared.jobsPerWorker,
          maxJobs: config.shared.maxJobs,
          idleMs: config.shared.idleMs,
          minResidencyMs: config.shared.minResidencyMs,
          headroomPercent: config.shared.headroomPercent,
        },
        creationLimits: {
          maxServers: config.maxServers,
          concurrency: config.createConcurrency,
          queue: config.createQueue,
        },
        workerLimits: {
          memoryBytes: config.workerMemoryBytes,
          nanoCpus: Math.round(config.workerCpus * 1e9),
          pids: config.workerPids,
        },
      },
    });
    const reconciler = new Reconciler({
      store,
      runtime,
      workers,
      lifecycle,
      metrics,
      logger,
      options: {
        instance: config.instance,
        intervalMs: config.reconcileIntervalMs,
        restartLimit: config.restartLimit,
        restartBackoffMs: config.restartBackoffMs,
        restartResetMs: config.restartResetMs,
      },
    });
    const app = await buildApp({
      lifecycle,
      store,
      runtime,
      workers,
      catalog,
      events,
      metrics,
      logger,
      bodyLimitBytes: config.bodyLimitBytes,
      requestMemoryBytes: config.requestMemoryBytes,
      bodyTimeoutMs: config.bodyTimeoutMs,
      keys,
      metricsPublic: config.auth.metricsPublic,
      maxEventStreams: config.eventStreams,
      version: VERSION,
      reconcile: () => reconciler.reconcileAll('request'),
    });
    const router = new Router(
      app,
      lifecycle,
      reconciler,
      store,
      runtime,
      workers,
      events,
      metrics,
      keys,
      config,
      logger,
    );
    await reconciler.start();
    lifecycle.memoryPolicy.start();
    lifecycle.autoscaler.start();
    lifecycle.fleet.start();
    await lifecycle.pool
      .start()
      .catch((error: unknown) =>
        logger.warn({ err: errorMessage(error) }, 'warm pool could not start; creating containers on demand'),
      );
    return router;
  }

  /**
   * Re-read the key files (SIGHUP): a file may list the old and the new key while clients
   * move over. A file that cannot be read or holds no key keeps the keys in force.
   */
  reloadKeys(): void {
    if (this.config.auth.mode !== 'keys') return;
    try {
      this.keys.replace(readKeys(this.config.auth));
      this.logger.info({ keys: this.keys.size }, 'API keys re-read');
    } catch (error) {
      this.logger.error({ err: errorMessage(error) }, 'API keys not re-read; the keys in force stay');
    }
  }

  async listen(): Promise<string> {
    const url = await this.app.listen({ port: this.config.port, host: this.config.host });
    if (this.config.grpcPort !== 0) {
      const { server, port } = await GrpcInferenceServer.start(
        {
          lifecycle: this.lifecycle,
          workers: this.workers,
          store: this.store,
          metrics: this.metrics,
          logger: this.logger,
          version: VERSION,
          readiness: readinessProbe({ store: this.store, runtime: this.runtime }),
          // The same KeyRing as HTTP, with the `authorization` metadata value.
          authorize: (authorization, scope) => {
            const decision = this.keys.authorize(authorization, scope);
            if (decision.ok) return decision.caller.id;
            throw decision.status === 401
              ? new UnauthorizedError(decision.message)
              : new ForbiddenError(decision.message);
          },
        },
        {
          host: this.config.host,
          port: this.config.grpcPort,
          maxMessageBytes: this.config.bodyLimitBytes,
          maxStreamsPerConnection: this.config.grpcStreamsPerConnection,
          maxCallsPerPeer: this.config.grpcCallsPerPeer,
          messageTimeoutMs: this.config.bodyTimeoutMs,
        },
      );
      this.grpc = server;
      this.grpcPort = port;
      this.logger.info({ port, host: this.config.host }, 'gRPC inference service listening');
    }
    return url;
  }

  /**
   * Stops serving and watching. Workers keep running: they belong to the engine, not to us.
   * No new connections are accepted; requests under way (and any that arrive on a
   * kept-alive connection meanwhile, answered with `Connection: close`) are finished, for
   * at most MODELDOCK_DRAIN_TIMEOUT_MS; then the connections left are cut.
   */
  async close(): Promise<void> {
    const closed = Promise.all([this.app.close(), this.grpc?.close()]);
    const timer = setTimeout(() => {
      this.logger.warn(
        { drainTimeoutMs: this.config.drainTimeoutMs },
        'requests still under way after the drain timeout; closing their connections',
      );
      this.app.server.closeAllConnections();
    }, this.config.drainTimeoutMs);
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
    this.lifecycle.memoryPolicy.stop();
    this.lifecycle.autoscaler.stop();
    this.lifecycle.fleet.stop();
    this.lifecycle.pool.stop();
    await this.reconciler.stop();
    await this.workers.close();
    await this.runtime.close();
    await this.store.close();
    this.logger.info('router stopped');
  }
}
