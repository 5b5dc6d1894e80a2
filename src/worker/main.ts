/**
 * Entry point of the inference worker (its own process and image). Runs the same from
 * a container or from the repository (`node --import tsx src/worker/main.ts`), configured
 * only by its MODELDOCK_* environment (see worker-config.ts).
 */
import { pino } from 'pino';
import type { workerGrpcServer } from './grpc-service.js';
import { buildWorkerApp } from './app.js';
import { LocalStoreSource } from './local-store-source.js';
import { openMemoryMeter } from './memory-meter.js';
import { serveHttp2Alongside } from './protocol-listener.js';
import { warmUpOnnxRuntime } from './warm-up.js';
import { loadWorkerConfig, workerLogLevel } from './worker-config.js';

// ONNX Runtime would otherwise try to upload telemetry, which a model server must not do.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

/** A stop that takes longer than this (a request that never ends) exits anyway. */
const STOP_GRACE_MS = 20_000;

const logger = pino({
  level: workerLogLevel(),
  base: { service: 'modeldock-worker' },
});

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const log = logger.child({ worker: config.name });
  // The secret is the worker's only lock when others share its network (docs/worker.md).
  if (!config.secret)
    log.warn('no MODELDOCK_WORKER_SECRET: anyone who reaches this port can drive the worker');
  // The router's store when it names one (no shared file system), else the directories.
  // (Loaded only when used: its HTTP client costs every other worker's boot ~50 ms.)
  const source = config.storeUrl
    ? new (await import('./remote-store-source.js')).RemoteStoreSource({
        url: config.storeUrl,
        secret: config.secret,
        cacheDir: config.storeCacheDir,
        logger: log,
      })
    : new LocalStoreSource(config.modelsDir, config.datasetsDir);
  const { app, infer } = await buildWorkerApp({
    source,
    modelsDir: config.modelsDir,
    datasetsDir: config.datasetsDir,
    threads: config.threads,
    bodyLimitBytes: config.bodyLimitBytes,
    maxElements: config.maxElements,
    ...(config.secret ? { secret: config.secret } : {}),
    logger: log,
    name: config.name,
    memoryMeter: await openMemoryMeter(),
  });
  // gRPC on the same port as HTTP (protocol-listener.ts), set up at its first connection:
  // grpc-js and the service definition take ~0.1 s to load (more under a CPU limit),
  // which every worker would otherwise add to its boot, and so to every DEPLOY_CREATE,
  // whether anyone speaks gRPC to it or not. The connection waits, paused, meanwhile.
  let grpc: Promise<ReturnType<typeof workerGrpcServer>> | undefined;
  const grpcServer = () =>
    (grpc ??= import('./grpc-service.js').then(({ workerGrpcServer }) =>
      workerGrpcServer({
        app,
        infer,
        ...(config.secret ? { secret: config.secret } : {}),
        maxMessageBytes: config.bodyLimitBytes,
        logger: log,
      }),
    ));
  serveHttp2Alongside(app.server, (socket) => {
    // Until grpc-js owns the socket, an error on it is ours to end (not an uncaught one).
    const onError = () => socket.destroy();
    socket.on('error', onError);
    grpcServer().then(
      (server) => {
        socket.removeListener('error', onError);
        if (!socket.destroyed) server.injector.injectConnection(socket);
      },
      (error: unknown) => {
        log.error({ err: error }, 'gRPC cannot start');
        socket.destroy();
      },
    );
  });
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'worker stopping');
      setTimeout(() => {
        log.warn({ graceMs: STOP_GRACE_MS }, 'worker did not stop in time; exiting');
        process.exit(1);
      }, STOP_GRACE_MS).unref();
      // Closing waits for requests in progress, then releases every loaded session.
      void grpc?.then((server) => server.injector.drain(STOP_GRACE_MS));
      app.close().then(
        () => process.exit(0),
        (error: unknown) => {
          log.error({ err: error }, 'worker stop failed');
          process.exit(1);
        },
      );
    });
  }
  // Before listening, so "ready" means the runtime is warm (see warm-up.ts).
  const warmUpMs = await warmUpOnnxRuntime(config.threads);
  await app.listen({ port: config.port, host: config.host });
  log.info({ port: config.port, host: config.host, store: source.description, warmUpMs }, 'worker listening');
}

main().catch((error: unknown) => {
  // A bad setting or a taken port: one clear line, no stack, and a failed exit.
  logger.fatal(`worker cannot start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
