/** Entry point of the inference worker (its own process and image). */
import { pino } from 'pino';
import { buildWorkerApp } from './app.js';
import { loadWorkerConfig } from './worker-config.js';

// ONNX Runtime would otherwise try to upload telemetry, which a model server must not do.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

const config = loadWorkerConfig();
const logger = pino({ level: config.logLevel, base: { service: 'modeldock-worker', worker: config.name } });
const { app } = await buildWorkerApp({
  modelsDir: config.modelsDir,
  datasetsDir: config.datasetsDir,
  threads: config.threads,
  bodyLimitBytes: config.bodyLimitBytes,
  logger,
  name: config.name,
});
await app.listen({ port: config.port, host: config.host });
logger.info({ port: config.port, models: config.modelsDir }, 'worker listening');

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'worker stopping');
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
