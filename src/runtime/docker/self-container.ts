/**
 * "Docker in Docker" as the original deployment does it: the router runs in a container
 * with the host's Docker socket mounted. Then
 * - workers must join the router's own network and be reached by name (a port
 *   published on the host's loopback is not the router's loopback), and
 * - a store path inside the router's container means nothing to the engine: it is
 *   translated through the router's own mounts into a host path or a named volume. A
 *   store in a subfolder of a named volume is mounted as that subfolder (the volume's
 *   subpath, Engine 26 / API 1.45 and later); an older engine cannot, and the router then
 *   refuses to start with the fix in the message (a copy would go stale). A store that is
 *   on no mount (the example store baked into the router image) is copied once into a
 *   named volume, which workers then mount.
 */
import type Dockerode from 'dockerode';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, type Config } from '../../config.js';
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

/** What the engine can mount besides whole volumes and bind mounts. */
export interface EngineMounts {
  /** The engine mounts a volume's subfolder (VolumeOptions.Subpath, API 1.45 / Engine 26). */
  volumeSubpath: boolean;
}

/** First API version with VolumeOptions.Subpath. */
const SUBPATH_API = [1, 45];

/** Whether the engine speaks an API version that mounts volume subfolders. */
export async function engineMounts(engine: DockerEngine): Promise<EngineMounts> {
  const version = await engine.docker.version().catch(() => undefined);
  const [major = 0, minor = 0] = (version?.ApiVersion ?? '0.0').split('.').map(Number);
  return { volumeSubpath: major > SUBPATH_API[0]! || (major === SUBPATH_API[0] && minor >= SUBPATH_API[1]!) };
}

/**
 * Translate a path inside our container into what the engine can mount. A subfolder of a
 * named volume is that volume with a subpath where the engine can mount one; otherwise it
 * is refused (throws), never copied.
 */
export function translatePath(
  self: ContainerDetails,
  inside: string,
  mounts: EngineMounts,
): string | StoreMountSource | undefined {
  const target = path.resolve(inside);
  const mount = [...self.mounts]
    .sort((a, b) => b.destination.length - a.destination.length)
    .find((m) => target === m.destination || target.startsWith(`${m.destination}/`));
  if (!mount) return undefined;
  const rest = path.relative(mount.destination, target);
  if (mount.type === 'bind') return rest ? path.join(mount.source, rest) : mount.source;
  if (mount.type === 'volume' && mount.name && rest === '') return { type: 'volume', source: mount.name };
  if (mount.type === 'volume' && mount.name) {
    if (mounts.volumeSubpath) return { type: 'volume', source: mount.name, subpath: rest };
    throw new ConfigError(
      `the store ${target} is the subfolder ${rest} of volume ${mount.name}, and this Docker engine is older than Engine 26 (API 1.45) so it cannot mount a volume's subfolder into workers: mount the folder itself into the router (a volume of its own, or a bind mount of a host directory, e.g. -v modeldock-${path.basename(target)}:${target}), or upgrade the engine to 26 or later`,
    );
  }
  return undefined;
}

/**
 * Copy a directory of our own image into a named volume, with a one-shot container of
 * our own image (the directory is in the image, so that container has it too). At every
 * start, not only when the volume is new: a copy an earlier start did not finish, or one
 * from an older image, is completed and refreshed instead of served stale. Both the
 * volume and the copy container carry our labels.
 */
async function seedVolume(
  engine: DockerEngine,
  self: ContainerDetails,
  directory: string,
  volume: string,
  instance: string,
  logger: Logger,
): Promise<StoreMountSource> {
  await engine.ensureVolume(volume, {
    [LABELS.managed]: 'true',
    [LABELS.instance]: instance,
  });
  logger.debug({ directory, volume }, 'copying the store into a named volume for the workers');
  const script =
    "const fs=require('node:fs');fs.cpSync(process.argv[1],'/target',{recursive:true,force:true});";
  const exitCode = await engine.runToCompletion({
    Image: self.image,
    Entrypoint: ['node', '-e', script],
    Cmd: [directory],
    Labels: { [LABELS.managed]: 'true', [LABELS.instance]: instance, 'modeldock.role': 'seed' },
    HostConfig: { Mounts: [{ Type: 'volume', Source: volume, Target: '/target' }], NetworkMode: 'none' },
  });
  if (exitCode !== 0) throw new RuntimeUnavailableError(`copying ${directory} into volume ${volume} failed`);
  return { type: 'volume', source: volume };
}

async function resolveStore(
  engine: DockerEngine,
  self: ContainerDetails,
  mounts: EngineMounts,
  config: Config,
  what: 'models' | 'datasets',
  logger: Logger,
): Promise<{ dir: string; source: string | StoreMountSource }> {
  const configured = what === 'models' ? config.modelsDir : config.datasetsDir;
  const translated = translatePath(self, configured, mounts);
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
  const mounts = await engineMounts(engine);
  const models = await resolveStore(engine, self, mounts, config, 'models', logger);
  const datasets = await resolveStore(engine, self, mounts, config, 'datasets', logger);
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
