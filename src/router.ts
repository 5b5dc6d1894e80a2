/**
 * Wires one router from its parts. It receives concrete Store and Runtime instances
 * (only the entry point, src/cli/backends.ts, chooses them) and owns their life:
 * start-up order, graceful shutdown.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './api/app.js';
import { GrpcInferenceServer } from './api/grpc/grpc-server.js';
import type { Config } from './config.js';
import { RuntimeUnavailableError, errorMessage } from './errors.js';
import { Catalog } from './lifecycle/catalog.js';
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
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  /** Build everything and reconcile once; does not listen (tests use `app.inject`). */
  static async create(parts: RouterParts, options: { prepareRuntime?: boolean } = {}): Promise<Router> {
    const { config, store, runtime, logger } = parts;
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
    const catalog = new Catalog(config.modelsDir, config.datasetsDir);
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
        drainTimeoutMs: config.drainTimeoutMs,
        loadWaitMs: config.loadWaitMs,
        readyTimeoutMs: config.readyTimeoutMs,
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
      config,
      logger,
    );
    await reconciler.start();
    lifecycle.memoryPolicy.start();
    await lifecycle.pool
      .start()
      .catch((error: unknown) =>
        logger.warn({ err: errorMessage(error) }, 'warm pool could not start; creating containers on demand'),
      );
    return router;
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
          // API keys (#12) plug in here: authorize(authorization metadata, 'infer' | 'admin').
          authorize: undefined,
        },
        { host: this.config.host, port: this.config.grpcPort, maxMessageBytes: this.config.bodyLimitBytes },
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
    this.lifecycle.pool.stop();
    await this.reconciler.stop();
    await this.workers.close();
    await this.runtime.close();
    await this.store.close();
    this.logger.info('router stopped');
  }
}
