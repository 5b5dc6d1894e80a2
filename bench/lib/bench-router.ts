/**
 * A router a benchmark starts (the real `modeldock start`, compiled as `npm start` runs
 * it) that does not outlive the benchmark. Stopped by a signal (Ctrl-C, `kill`), a
 * benchmark exits without running its `finally` blocks, and a router left running keeps
 * re-creating its workers: it loaded the machine of the next measurement for an hour
 * once. So on SIGINT or SIGTERM every router started here that is still running is
 * stopped and its instance's workers removed, and then the benchmark exits.
 */
import Dockerode from 'dockerode';
import { removeInstanceContainers } from '../../test/helpers/router.js';
import { spawnRouter, type RouterProcess } from '../../test/helpers/router-process.js';

const running = new Map<RouterProcess, string | undefined>();

export async function startBenchRouter(env: Record<string, string>, logFile: string): Promise<RouterProcess> {
  stopRoutersOnSignal();
  const router = await spawnRouter(env, logFile, 'compiled');
  running.set(router, env.MODELDOCK_INSTANCE);
  const kill = router.kill;
  router.kill = async (signal) => {
    running.delete(router);
    return kill(signal);
  };
  return router;
}

let installed = false;

function stopRoutersOnSignal(): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`${signal}: stopping ${running.size} router(s) and their workers…`);
      const docker = new Dockerode();
      const stops = [...running].map(async ([router, instance]) => {
        await router.kill('SIGTERM');
        if (instance) await removeInstanceContainers(docker, instance);
      });
      void Promise.allSettled(stops).then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}
