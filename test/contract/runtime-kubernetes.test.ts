/**
 * The Runtime contract, unchanged, against the Kubernetes runtime on the real cluster
 * scripts/kubernetes.sh builds and starts here (a missing cluster fails the test).
 */
import {
  cluster,
  killWorkerContainer,
  kubernetesRuntime,
  removeInstancePods,
} from '../helpers/kubernetes.js';
import type { KubernetesRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime.js';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { runRuntimeContract } from './runtime.contract.js';

const c = await cluster();

runRuntimeContract('kubernetes', {
  make: async (instance) => kubernetesRuntime(c, instance),
  killExternally: async (runtime, name) => {
    const k8s = runtime as KubernetesRuntime;
    const [pod] = (await k8s.api.listPods(ownerSelector(k8s.instance, name))).items;
    if (!pod) throw new Error(`no pod for ${name}`);
    await killWorkerContainer(pod);
  },
  cleanup: (instances) => removeInstancePods(c, instances),
});
