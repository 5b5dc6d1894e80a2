/**
 * The only place that chooses concrete backends: the store from MODELDOCK_DATABASE and the
 * runtime from MODELDOCK_RUNTIME (`auto`: Kubernetes inside a Pod with a service
 * account, else Docker when an engine answers, else processes).
 */
import Dockerode from 'dockerode';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { DockerEngine } from '../runtime/docker/docker-engine.js';
import { DockerRuntime } from '../runtime/docker/docker-runtime.js';
import { ProcessRuntime } from '../runtime/process/process-runtime.js';
import type { Runtime } from '../runtime/runtime.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Store } from '../store/store.js';
import { detectPlacement } from '../runtime/docker/self-container.js';

export async function openStore(config: Config): Promise<Store> {
  if (config.store.startsWith('sqlite:')) {
    return new SqliteStore(path.resolve(config.store.slice('sqlite:'.length)), {
      synchronous: config.sqliteSynchronous,
    });
  }
  // Loaded only when configured: the driver costs memory a SQLite deployment never uses.
  const { MongoStore } = await import('../store/mongodb/mongodb-store.js');
  return new MongoStore(config.store);
}

export interface ChosenRuntime {
  runtime: Runtime;
  why: string;
  /** The configuration with the store directories as the router reads them. */
  config: Config;
}

export async function chooseRuntime(config: Config, logger: Logger): Promise<ChosenRuntime> {
  if (config.runtime === 'kubernetes' || (config.runtime === 'auto' && config.kubernetes.inCluster)) {
    // Loaded only when configured: the client costs memory other deployments never use.
    const { hasServiceAccount } = await import('../runtime/kubernetes/kube-api.js');
    if (config.runtime === 'kubernetes' || hasServiceAccount()) {
      const runtime = await kubernetesRuntime(config, logger);
      const why =
        config.runtime === 'kubernetes'
          ? 'MODELDOCK_RUNTIME=kubernetes'
          : 'auto: running in a Kubernetes Pod with a service account';
      return { runtime, why, config };
    }
  }
  if (config.runtime === 'docker' || config.runtime === 'auto') {
    const docker = new Dockerode();
    const answered = await new DockerEngine(docker).ping(AbortSignal.timeout(3_000)).then(
      () => true,
      () => false,
    );
    if (answered || config.runtime === 'docker') {
      const placement = answered ? await detectPlacement(docker, config, logger) : undefined;
      const effective = placement
        ? { ...config, modelsDir: placement.modelsDir, datasetsDir: placement.datasetsDir }
        : config;
      const runtime = new DockerRuntime({
        docker,
        instance: config.instance,
        image: config.workerImage,
        modelsDir: placement?.modelsSource ?? config.modelsDir,
        datasetsDir: placement?.datasetsSource ?? config.datasetsDir,
        ...(placement ? { placement: placement.placement } : {}),
        logger,
      });
      const why = config.runtime === 'docker' ? 'MODELDOCK_RUNTIME=docker' : 'auto: a Docker engine answered';
      return { runtime, why, config: effective };
    }
  }
  const runtime = new ProcessRuntime({
    instance: config.instance,
    stateDir: path.resolve('data', 'process-runtime'),
    modelsDir: config.modelsDir,
    datasetsDir: config.datasetsDir,
    logger,
  });
  return {
    runtime,
    why: config.runtime === 'process' ? 'MODELDOCK_RUNTIME=process' : 'auto: no Docker engine answered',
    config,
  };
}

async function kubernetesRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const { loadKubeConfig } = await import('../runtime/kubernetes/kube-api.js');
  const { KubernetesRuntime } = await import('../runtime/kubernetes/kubernetes-runtime.js');
  const k8s = config.kubernetes;
  return new KubernetesRuntime({
    config: loadKubeConfig(k8s.kubeconfig || undefined),
    namespace: k8s.namespace,
    instance: config.instance,
    image: config.workerImage,
    imagePullPolicy: k8s.imagePullPolicy,
    store: k8s.store.startsWith('pvc:')
      ? { type: 'pvc', claim: k8s.store.slice('pvc:'.length) }
      : k8s.store === 'router'
        ? { type: 'router', url: k8s.routerUrl }
        : { type: 'hostPath', modelsDir: config.modelsDir, datasetsDir: config.datasetsDir },
    requestsRatio: k8s.requestsRatio,
    logger,
  });
}
