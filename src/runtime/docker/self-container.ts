/**
 * "Docker in Docker" as the original deployment does it: the router runs in a container
 * with the host's Docker socket mounted. Then
 * - workers must join the router's own network and be reached by name (a port
 *   published on the host's loopback is not the router's loopback), and
 * - a store path inside the router's container means nothing to the engine: it is
 *   translated through the router's own mounts into a host path or a named volume. A
 *   store that is on no mount (the example store baked into the router image) is
 *   copied once into a named volume, which workers then mount.
 */
import type Dockerode from 'dockerode';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import { RuntimeUnavailableError } from '../../errors.js';
import { LABELS } from '../runtime.js';
import { DockerEngine, type ContainerDetails } from './docker-engine.js';
import type { StoreMountSource, WorkerPlacement } from './docker-runtime.js';

export interface DetectedPlacement {
  placement: WorkerPlacement;
  modelsSource: string | StoreMountSource;
  datasetsSource: string | StoreMountSource;
  /** The store directories as the router itself reads them (may differ from the config). */
  modelsDir: string;
  datasetsDir: string;
  selfContainer: string | null;
}

/** Our own container id, if we run in one: from the cgroup or mount table, else the hostname. */
async function ownContainerCandidates(): Promise<string[]> {
  const candidates = new Set<string>();
  for (const file of ['/proc/self/cgroup', '/proc/self/mountinfo']) {
    try {
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(/([0-9a-f]{64})/g)) candidates.add(match[1]!);
    } catch {
      // not Linux, or not readable: fall through
    }
  }
  candidates.add(os.hostname());
  return [...candidates];
}

export async function findSelfContainer(engine: DockerEngine): Promise<ContainerDetails | undefined> {
  // Only containers have /.dockerenv; on the host there is nothing to find.
  if (!existsSync('/.dockerenv')) return undefined;
  for (const candidate of await ownContainerCandidates()) {
    const details = await engine.inspect(candidate).catch(() => undefined);
    if (details) return details;
  }
  return undefined;
}

/** Translate a path inside our container into what the engine can mount. */
export function translatePath(self: ContainerDetails, inside: string): string | StoreMountSource | undefined {
  const target = path.resolve(inside);
  const mount = [...self.mounts]
    .sort((a, b) => b.destination.length - a.destination.length)
    .find((m) => target === m.destination || target.startsWith(`${m.destination}/`));
  if (!mount) return undefined;
  const rest = path.relative(mount.destination, target);
  if (mount.type === 'bind') return rest ? path.join(mount.source, rest) : mount.source;
  if (mount.type === 'volume' && mount.name && rest === '') return { type: 'volume', source: mount.name };
  return undefined;
}

/**
 * Copy a directory of our own image into a named volume, with a one-shot container of
 * our own image (the directory is in the image, so that container has it too).
 */
async function seedVolume(
  engine: DockerEngine,
  self: ContainerDetails,
  directory: string,
  volume: string,
  instance: string,
  logger: Logger,
): Promise<StoreMountSource> {
  const { created } = await engine.ensureVolume(volume, {
    [LABELS.managed]: 'true',
    [LABELS.instance]: instance,
  });
  if (created) {
    logger.debug({ directory, volume }, 'copying the store into a named volume for the workers');
    const script =
      "const fs=require('node:fs');fs.cpSync(process.argv[1],'/target',{recursive:true,force:true});";
    const exitCode = await engine.runToCompletion({
      Image: self.image,
      Entrypoint: ['node', '-e', script],
      Cmd: [directory],
      Labels: { [LABELS.instance]: instance, 'modeldock.role': 'seed' },
      HostConfig: {
        Mounts: [{ Type: 'volume', Source: volume, Target: '/target' }],
        NetworkMode: 'none',
        // A copy needs no privileges: root only because a fresh volume belongs to root.
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        ReadonlyRootfs: true,
        Memory: 256 * 1024 ** 2,
        NanoCpus: 1e9,
        PidsLimit: 64,
      },
    });
    if (exitCode !== 0)
      throw new RuntimeUnavailableError(`copying ${directory} into volume ${volume} failed`);
  }
  return { type: 'volume', source: volume };
}

async function resolveStore(
  engine: DockerEngine,
  self: ContainerDetails,
  config: Config,
  what: 'models' | 'datasets',
  logger: Logger,
): Promise<{ dir: string; source: string | StoreMountSource }> {
  const configured = what === 'models' ? config.modelsDir : config.datasetsDir;
  const translated = translatePath(self, configured);
  if (translated) return { dir: configured, source: translated };
  // Not on a mount: a directory baked into the image (the example store by default).
  const baked =
    existsSync(configured) || !config.exampleStoreDir ? configured : path.join(config.exampleStoreDir, what);
  if (!existsSync(baked)) {
    logger.warn(
      { dir: configured },
      `the ${what} store ${configured} is neither mounted nor in the image; mount one (-v /host/${what}:${configured})`,
    );
    return { dir: configured, source: configured };
  }
  const source = await seedVolume(engine, self, baked, `${config.instance}-${what}`, config.instance, logger);
  logger.debug(
    { dir: baked, volume: source.source },
    `serving the ${what} store from the image through a volume`,
  );
  return { dir: baked, source };
}

export async function detectPlacement(
  docker: Dockerode,
  config: Config,
  logger: Logger,
): Promise<DetectedPlacement | undefined> {
  const engine = new DockerEngine(docker);
  const self = await findSelfContainer(engine);
  if (!self) {
    if (!config.network) return undefined;
    return {
      placement: { mode: 'network', network: config.network },
      modelsSource: config.modelsDir,
      datasetsSource: config.datasetsDir,
      modelsDir: config.modelsDir,
      datasetsDir: config.datasetsDir,
      selfContainer: null,
    };
  }
  const network = config.network || self.networks.find((n) => n !== 'bridge' && n !== 'host') || 'bridge';
  if (network === 'bridge') {
    logger.warn(
      'the router runs on the default bridge network, where containers cannot reach each other by name; start it on a user network (docker network create …) or set MODELDOCK_NETWORK',
    );
  }
  const models = await resolveStore(engine, self, config, 'models', logger);
  const datasets = await resolveStore(engine, self, config, 'datasets', logger);
  logger.debug(
    { container: self.name, network, models: models.source, datasets: datasets.source },
    'router runs in a container: workers join its network and are reached by name',
  );
  return {
    placement: { mode: 'network', network },
    // (The first log line, written by the entry point, says where workers go.)
    modelsSource: models.source,
    datasetsSource: datasets.source,
    modelsDir: models.dir,
    datasetsDir: datasets.dir,
    selfContainer: self.id,
  };
}
