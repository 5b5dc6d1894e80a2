/**
 * The commands that run modeldock itself rather than talk to it: `start` (the router)
 * and `images`. Loaded only when one of them runs, so the client commands start fast
 * and never load the router, its runtimes or its stores.
 */
import Dockerode from 'dockerode';
import { ConfigError, loadConfig } from '../../config.js';
import { errorMessage } from '../../errors.js';
import { Router } from '../../router.js';
import { buildImage } from '../../runtime/docker/image-builder.js';
import { VERSION } from '../../version.js';
import { chooseRuntime, openStore } from '../backends.js';
import { routerLogger } from '../router-logger.js';

export async function start(): Promise<void> {
  const configured = loadConfig();
  const logger = routerLogger(configured.logLevel);
  const { runtime, why, config } = await chooseRuntime(configured, logger);
  logger.info(
    {
      version: VERSION,
      runtime: runtime.kind,
      why,
      store: config.store.replace(/\/\/[^@/]*@/, '//***@'),
      models: config.modelsDir,
      datasets: config.datasetsDir,
    },
    `modeldock ${VERSION} starting with the ${runtime.kind} runtime (${why})`,
  );
  const router = await Router.create({ config, store: await openStore(config), runtime, logger });
  const address = await router.listen();
  logger.info({ address }, `modeldock router listening on ${address} (console: ${address}/ui)`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down (workers keep running)');
    router.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: errorMessage(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

export async function images(kinds: string[]): Promise<void> {
  const config = loadConfig();
  const docker = new Dockerode();
  for (const kind of kinds.length > 0 ? kinds : ['worker', 'router']) {
    if (kind !== 'worker' && kind !== 'router')
      throw new ConfigError(`unknown image ${kind}: worker or router`);
    // The tags the router and tests run: MODELDOCK_WORKER_IMAGE / MODELDOCK_ROUTER_IMAGE.
    const tag = kind === 'worker' ? config.workerImage : config.routerImage;
    console.log(`building ${tag}`);
    await buildImage(docker, kind, tag, (line) =>
      process.stdout.write(line.endsWith('\n') ? line : `${line}\n`),
    );
  }
}
