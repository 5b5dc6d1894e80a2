/**
 * How a container runtime (Docker, Kubernetes) runs a foreign server's image
 * (WorkerSpec.serverImage), the same way on both: the image's guard
 * (src/worker/guard-main.ts) takes the worker's port and starts the server, which listens
 * on loopback at the ports its entry names, with its placeholders filled for the
 * container. Its model repository (`/repository`) holds the job's model alone, mounted
 * read-only under the job's name, so the server loads and serves the model under the
 * name the router routes to. Each runtime mounts it its own way. A pooled server's (the
 * warm pool's, WorkerSpec.emptyRepository: pooledForeignContainer) is empty instead, and
 * its guard is told where the runtime mounts the model store, to link the model of the
 * job it is handed to (src/worker/guard-repository.ts).
 */
import path from 'node:path';
import { InvalidInputError } from '../errors.js';
import { GUARD_STORE_DIR_ENV } from '../guard-repository-protocol.js';
import { LABELS, type WorkerSpec } from './runtime.js';
import { fillServerCommand } from './server-command.js';

/** Where a foreign server finds its model repository in its container. */
export const SERVER_REPOSITORY = '/repository';
/** Where the datasets are in a worker's container. */
const DATASETS = '/datasets';

export interface ForeignContainer {
  /** The job's model (directory name in the store) and the job, whose name it is served under. */
  model: string;
  job: string;
  /** `/repository/<job>`: where the job's model directory is mounted, read-only. */
  repositoryPath: string;
  /** The guard: the image's entrypoint (Docker) or command (Kubernetes). */
  entrypoint: string[];
  /** Its arguments: `--`, then the server's command line. */
  args: string[];
  /** Environment on top of the worker's: the server's own, and the guard's settings. */
  env: Record<string, string>;
}

/** The guard and server of `spec`, whose guard listens on `guardPort` (the worker's port). */
export function foreignContainer(spec: WorkerSpec, guardPort: number): ForeignContainer {
  const job = spec.labels[LABELS.job];
  const model = spec.labels[LABELS.model];
  if (spec.emptyRepository) {
    throw new InvalidInputError(`worker ${spec.name} is a pooled server, which this runtime does not start`);
  }
  if (!job || !model) throw new InvalidInputError(`worker ${spec.name} names no job and model`);
  return {
    model,
    job,
    repositoryPath: path.posix.join(SERVER_REPOSITORY, job),
    ...guardAndServer(spec, guardPort),
  };
}

/**
 * A pooled server's guard and server (WorkerSpec.emptyRepository): its repository starts
 * empty, and its guard sees the model store at `store`, where the runtime mounts it
 * (undefined: none is mounted, and the runtime tells the guard where to fetch from).
 */
export function pooledForeignContainer(
  spec: WorkerSpec,
  guardPort: number,
  store: string | undefined,
): Omit<ForeignContainer, 'model' | 'job' | 'repositoryPath'> {
  const container = guardAndServer(spec, guardPort);
  return store === undefined
    ? container
    : { ...container, env: { ...container.env, [GUARD_STORE_DIR_ENV]: store } };
}

function guardAndServer(spec: WorkerSpec, guardPort: number) {
  const { command, ports } = spec.serverImage!;
  for (const port of [ports.http, ports.grpc]) {
    if (port === guardPort) {
      throw new InvalidInputError(
        `a foreign server cannot listen on port ${guardPort} in its container: the guard in front of it does`,
      );
    }
  }
  const grpcPort = ports.grpc ?? ports.http + 1;
  const filled = fillServerCommand(command, {
    host: '127.0.0.1',
    port: String(ports.http),
    grpcPort: String(grpcPort),
    metricsPort: String(Math.max(ports.http, grpcPort) + 1),
    modelsDir: SERVER_REPOSITORY,
    datasetsDir: DATASETS,
  });
  return {
    entrypoint: ['node', '/app/guard.mjs'],
    args: ['--', filled.command, ...filled.args],
    env: {
      ...filled.env,
      HOME: '/tmp',
      MODELDOCK_GUARD_PORT: String(guardPort),
      MODELDOCK_GUARD_HOST: '0.0.0.0',
      MODELDOCK_WORKER_HOST: '127.0.0.1',
      MODELDOCK_WORKER_PORT: String(ports.http),
      MODELDOCK_MODELS_DIR: SERVER_REPOSITORY,
    },
  };
}
