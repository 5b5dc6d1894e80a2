/**
 * Crash safety of every operation on Docker (the scenario: crash-recovery.scenario.ts).
 */
import Dockerode from 'dockerode';
import { LABELS } from '../../src/runtime/runtime.js';
import { removeInstanceContainers } from '../helpers/router.js';
import { runCrashRecovery } from './crash-recovery.scenario.js';

const docker = new Dockerode();

runCrashRecovery('docker', {
  env: { MODELDOCK_RUNTIME: 'docker' },
  trials: Number(process.env.MODELDOCK_CRASH_TRIALS ?? 40),
  killWindowMs: {
    DEPLOY_CREATE: 450,
    DEPLOY_LOAD: 25,
    DEPLOY_UNLOAD: 8,
    TERMINATE: 150,
    TEMP: 600,
  },
  workers: async (instance) => {
    const containers = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.instance}=${instance}`] },
    });
    return containers.map((c) => ({
      name: c.Names[0]!.replace(/^\//, ''),
      running: c.State === 'running',
      state: c.State,
    }));
  },
  cleanup: (instance) => removeInstanceContainers(docker, instance),
});
