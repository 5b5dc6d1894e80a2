/**
 * "Docker in Docker" as the original deployment does it: the router runs in a container
 * with the host's Docker socket mounted. Then
 * - workers must join the router's own network and be reached by name (a port
 *   published on the host's loopback is not the router's loopback), and
 * - a store path inside the router's container means nothing to the engine: it is
 *   translated through the router's own mounts into a host path or a named volume.
 */
import type Dockerode from 'dockerode';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import { DockerEngine, type ContainerDetails } from './docker-engine.js';
import type { StoreMountSource, WorkerPlacement } from './docker-runtime.js';

export interface DetectedPlacement {
  placement: WorkerPlacement;
  modelsSource: string | StoreMountSource;
  datasetsSource: string | StoreMountSource;
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
  try {
    await readFile('/.dockerenv');
  } catch {
    // Only containers have /.dockerenv; on the host there is nothing to find.
    return undefined;
  }
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

export async function detectPlacement(
  docker: Dockerode,
  config: Config,
  logger: Logger,
): Promise<DetectedPlacement | undefined> {
  const engine = new DockerEngine(docker);
  const self = await findSelfContainer(engine);
  if (!self) {
    if (config.network) {
      return {
        placement: { mode: 'network', network: config.network },
        modelsSource: config.modelsDir,
        datasetsSource: config.datasetsDir,
        selfContainer: null,
      };
    }
    return undefined;
  }
  const network =
    config.network || self.networks.find((n) => n !== 'bridge' && n !== 'host') || self.networks[0];
  if (!network || network === 'bridge') {
    logger.warn(
      'the router runs on the default bridge network, where containers cannot reach each other by name; start it on a user network (docker network create ...) or set MODELDOCK_NETWORK',
    );
  }
  const modelsSource = translatePath(self, config.modelsDir);
  const datasetsSource = translatePath(self, config.datasetsDir);
  for (const [what, dir, source] of [
    ['models', config.modelsDir, modelsSource],
    ['datasets', config.datasetsDir, datasetsSource],
  ] as const) {
    if (!source) {
      logger.warn(
        { dir },
        `the ${what} store ${dir} is not on a mount of the router's container, so workers cannot see it; mount it (-v /host/${what}:${dir}) or use a named volume`,
      );
    }
  }
  logger.info({ container: self.name, network, modelsSource, datasetsSource }, 'router runs in a container');
  return {
    placement: { mode: 'network', network: network ?? 'bridge' },
    modelsSource: modelsSource ?? config.modelsDir,
    datasetsSource: datasetsSource ?? config.datasetsDir,
    selfContainer: self.id,
  };
}
