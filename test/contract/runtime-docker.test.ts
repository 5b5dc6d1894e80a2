import Dockerode from 'dockerode';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';
import { DATASETS_DIR, MODELS_DIR, WORKER_IMAGE } from '../helpers/paths.js';
import { removeInstanceContainers } from '../helpers/router.js';
import { runRuntimeContract } from './runtime.contract.js';

const docker = new Dockerode();

runRuntimeContract('docker', {
  make: async (instance) =>
    new DockerRuntime({
      docker,
      instance,
      image: WORKER_IMAGE,
      modelsDir: MODELS_DIR,
      datasetsDir: DATASETS_DIR,
    }),
  killExternally: async (_runtime, name) => {
    await docker.getContainer(name).kill({ signal: 'SIGKILL' });
  },
  cleanup: async (instances) => {
    for (const instance of instances) await removeInstanceContainers(docker, instance);
  },
});
