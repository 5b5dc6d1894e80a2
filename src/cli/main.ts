#!/usr/bin/env node
/**
 * The modeldock command.
 *   modeldock start    run the router (default)
 *   modeldock images   build the worker (and router) images on this machine
 */
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config.js';
import { errorMessage } from '../errors.js';
import { Router } from '../router.js';
import { buildImage } from '../runtime/docker/image-builder.js';
import { VERSION } from '../version.js';
import { chooseRuntime, openStore } from './backends.js';

async function start(): Promise<void> {
  const configured = loadConfig();
  const logger = pino({ level: configured.logLevel, base: { service: 'modeldock-router' } });
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
  logger.info({ address }, `modeldock router listening on ${address}`);

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

async function images(args: string[]): Promise<void> {
  const config = loadConfig();
  const docker = new Dockerode();
  const kinds = args.length > 0 ? args : ['worker', 'router'];
  for (const kind of kinds) {
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

async function main(): Promise<void> {
  const [command = 'start', ...args] = process.argv.slice(2);
  switch (command) {
    case 'start':
      return start();
    case 'images':
      return images(args);
    case 'version':
    case '--version':
      console.log(VERSION);
      return;
    default:
      console.error('usage: modeldock [start|images [worker|router]|version]');
      process.exit(2);
  }
}

main().catch((error: unknown) => {
  console.error(`modeldock: ${errorMessage(error)}`);
  process.exit(1);
});
