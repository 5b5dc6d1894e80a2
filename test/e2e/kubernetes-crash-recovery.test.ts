/**
 * Crash safety of every operation on the Kubernetes runtime, on the real test cluster
 * (the scenario: crash-recovery.scenario.ts): after each SIGKILL of the router, exactly
 * the Pods the store says should live do, one per job.
 */
import { NAME_LABEL, ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { TEST_NAMESPACE, cluster, removeInstancePods } from '../helpers/kubernetes.js';
import { runCrashRecovery } from './crash-recovery.scenario.js';

const c = await cluster();

runCrashRecovery('kubernetes', {
  env: {
    MODELDOCK_RUNTIME: 'kubernetes',
    KUBECONFIG: c.kubeconfigPath,
    MODELDOCK_K8S_NAMESPACE: TEST_NAMESPACE,
    MODELDOCK_K8S_IMAGE_PULL_POLICY: 'Never',
  },
  trials: Number(process.env.MODELDOCK_K8S_CRASH_TRIALS ?? 10),
  // Pod start and deletion take longer than a container's (see BENCHMARKS.md).
  killWindowMs: {
    DEPLOY_CREATE: 1_500,
    DEPLOY_LOAD: 25,
    DEPLOY_UNLOAD: 8,
    TERMINATE: 1_200,
    TEMP: 2_000,
  },
  workers: async (instance) => {
    const pods = await c.core.listNamespacedPod({
      namespace: TEST_NAMESPACE,
      labelSelector: ownerSelector(instance),
    });
    return pods.items.map((pod) => {
      const state = pod.status?.containerStatuses?.[0]?.state;
      const running =
        !pod.metadata?.deletionTimestamp && Boolean(state?.running) && Boolean(pod.status?.podIP);
      return {
        name: pod.metadata?.labels?.[NAME_LABEL] ?? pod.metadata!.name!,
        running,
        state: `${pod.status?.phase}${pod.metadata?.deletionTimestamp ? ' (deleting)' : ''}`,
      };
    });
  },
  cleanup: (instance) => removeInstancePods(c, [instance]),
});
