/**
 * The commands that run modeldock itself rather than talk to it: `start` (the router)
 * and `images`. Loaded only when one of them runs, so the client commands start fast
 * and never load the router, its runtimes or its stores.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import Dockerode from 'dockerode';
import { ConfigError, loadConfig, readKeys } from '../../config.js';
import { errorMessage } from '../../errors.js';
import { Router } from '../../router.js';
import { buildImage, pythonVenv, type ImageKind } from '../../runtime/docker/image-builder.js';
import { VERSION } from '../../version.js';
import { chooseRuntime, openStore } from '../backends.js';
import { ensureGeneratedKey } from '../generated-key.js';
import { routerLogger } from '../router-logger.js';

export async function start(): Promise<void> {
  const configured = loadConfig();
  const logger = routerLogger(configured.logLevel);
  const { runtime, why, config } = await chooseRuntime(configured, logger);
  const auth = config.auth;
  const access =
    auth.mode === 'none'
      ? `no API key configured: listening on ${config.host} only, no key asked`
      : auth.mode === 'off'
        ? `MODELDOCK_AUTH=off: no key asked on ${config.host}`
        : `API keys required on ${config.host}`;
  logger.info(
    {
      version: VERSION,
      runtime: runtime.kind,
      why,
      store: config.store.replace(/\/\/[^@/]*@/, '//***@'),
      models: config.modelsDir,
      datasets: config.datasetsDir,
      host: config.host,
      auth: auth.mode,
    },
    `modeldock ${VERSION} starting with the ${runtime.kind} runtime (${why}); ${access}`,
  );
  if (auth.mode === 'off') {
    logger.warn(
      { host: config.host },
      'MODELDOCK_AUTH=off: anyone who can reach this port can create containers on the engine; use it only on a trusted network',
    );
  }
  if (auth.generatedKeyFile !== undefined) {
    const file = auth.generatedKeyFile;
    const created = ensureGeneratedKey(file);
    logger.warn(
      { file, created },
      `no API key configured: ${created ? 'generated' : 'using the generated'} admin key in ${file} (mode 0600); ` +
        'print it with `modeldock api-key` (in the router image: `docker exec <router container> node /app/router.mjs api-key`) ' +
        'and send it as Authorization: Bearer <key>, or set MODELDOCK_API_KEY / MODELDOCK_API_KEY_FILE',
    );
  }
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
  // Rotation without downtime: the key files are re-read, requests in flight are unaffected.
  process.on('SIGHUP', () => router.reloadKeys());
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

export async function images(kinds: string[]): Promise<void> {
  const config = loadConfig();
  const docker = new Dockerode();
  // The tags the router and tests run: MODELDOCK_WORKER_IMAGE / _ROUTER_IMAGE / _MLSERVER_IMAGE / _TRITON_IMAGE.
  const tags: Record<ImageKind, string> = {
    worker: config.workerImage,
    router: config.routerImage,
    mlserver: config.mlserverImage,
    triton: config.tritonImage,
  };
  // The foreign servers' images need the venv they are made from: what shows it is there,
  // and the script that makes it.
  const venvs: Partial<Record<ImageKind, { marker: string; script: string }>> = {
    mlserver: { marker: path.join(pythonVenv(), 'bin', 'mlserver'), script: 'scripts/python-venv.sh' },
    triton: {
      marker: path.join(pythonVenv('triton-venv'), 'bin', 'tritonserver'),
      script: 'scripts/python-venv.sh',
    },
  };
  const wanted = kinds.length > 0 ? kinds : Object.keys(tags);
  for (const kind of wanted) {
    if (!(kind in tags)) throw new ConfigError(`unknown image ${kind}: ${Object.keys(tags).join(', ')}`);
  }
  for (const kind of wanted as ImageKind[]) {
    // Asked for by default only: without the venv the server comes from, skip it and say how.
    const venv = venvs[kind];
    if (venv && kinds.length === 0 && !existsSync(venv.marker)) {
      console.log(`skipping ${tags[kind]}: no ${venv.marker} (bash ${venv.script} makes it)`);
      continue;
    }
    console.log(`building ${tags[kind]}`);
    await buildImage(docker, kind, tags[kind], (line) =>
      process.stdout.write(line.endsWith('\n') ? line : `${line}\n`),
    );
  }
}

/** The generated admin key, for an operator with a shell where the router runs (the image has no `cat`). */
export function printGeneratedKey(): void {
  const auth = loadConfig().auth;
  if (auth.generatedKeyFile === undefined) {
    throw new ConfigError(
      auth.mode === 'keys'
        ? 'keys are configured (MODELDOCK_API_KEY / _FILE); no key was generated'
        : 'no generated key: set MODELDOCK_GENERATED_KEY_FILE (the router image does)',
    );
  }
  console.log(readKeys(auth).admin[0] ?? '');
}
