/**
 * The test cluster: a real single-node Kubernetes built and started by
 * scripts/kubernetes.sh (`ensure` reuses a healthy running one). A test that needs it
 * and cannot have it fails with the script's own error; nothing skips. The cluster is
 * left running for the next test file; `.ci/run` (or `scripts/kubernetes.sh down`)
 * tears it down.
 */
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubernetesRuntime } from '../../src/runtime/kubernetes/kubernetes-runtime.js';
import { ownerSelector } from '../../src/runtime/kubernetes/pod-labels.js';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT, WORKER_IMAGE } from './paths.js';

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, 'scripts/kubernetes.sh');

/** Where tests run workers: a namespace of their own, created by `cluster()`. */
export const TEST_NAMESPACE = 'modeldock-test';

async function script(args: string[], timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await run('bash', [SCRIPT, ...args], {
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout.trim();
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(
      `scripts/kubernetes.sh ${args.join(' ')} failed: ${(e.stderr ?? '').trim().split('\n').slice(-8).join('\n') || e.message}`,
    );
  }
}

export interface TestCluster {
  kubeconfigPath: string;
  config: KubeConfig;
  core: CoreV1Api;
  kubectl(args: string[], timeoutMs?: number): Promise<string>;
}

let cached: Promise<TestCluster> | undefined;

/**
 * The cluster, up (built on first use: ~6 min cold, then seconds), the worker image
 * imported into its containerd, and the test namespace present.
 */
export function cluster(): Promise<TestCluster> {
  cached ??= (async () => {
    // A cold build of the binaries is the long part; later calls return in seconds.
    const kubeconfigPath = (await script(['ensure'], 20 * 60_000)).split('\n').pop()!;
    await script(['import-image', WORKER_IMAGE], 5 * 60_000);
    const config = new KubeConfig();
    config.loadFromFile(kubeconfigPath);
    const core = config.makeApiClient(CoreV1Api);
    const kubectl = (args: string[], timeoutMs = 120_000) => script(['kubectl', ...args], timeoutMs);
    await kubectl(['create', 'namespace', TEST_NAMESPACE]).catch((error: Error) => {
      if (!/AlreadyExists/.test(error.message)) throw error;
    });
    // The namespace's default ServiceAccount (made by the controller-manager) must exist
    // before a Pod can be admitted. `--for=create`: a jsonpath or condition wait fails at
    // once with NotFound while the controller has not made it yet (a namespace created
    // moments before: seen in CI).
    await kubectl(['-n', TEST_NAMESPACE, 'wait', '--for=create', 'serviceaccount/default', '--timeout=60s']);
    return { kubeconfigPath, config, core, kubectl };
  })();
  return cached;
}

export function kubernetesRuntime(
  c: TestCluster,
  instance: string,
  overrides: Partial<ConstructorParameters<typeof KubernetesRuntime>[0]> = {},
): KubernetesRuntime {
  return new KubernetesRuntime({
    config: c.config,
    namespace: TEST_NAMESPACE,
    instance,
    image: WORKER_IMAGE,
    imagePullPolicy: 'Never',
    store: { type: 'hostPath', modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR },
    requestsRatio: 0.1,
    startTimeoutMs: 60_000,
    ...overrides,
  });
}

/**
 * Images a test runs besides the worker's (a foreign server's, the router's) put into the
 * node's containerd. `import-image` skips an image the cluster holds already under the
 * same id, so the large ones cost their `docker save | ctr import` once per cluster.
 */
export async function importImages(tags: string[]): Promise<void> {
  for (const tag of tags) await script(['import-image', tag], 5 * 60_000);
}

/** SIGKILL a worker's container through the node's containerd, as a crash would. */
export async function killWorkerContainer(pod: V1Pod): Promise<void> {
  const id = pod.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '');
  if (!id) throw new Error(`pod ${pod.metadata?.name} has no running container`);
  await script(['ctr', 'tasks', 'kill', '--signal', 'SIGKILL', id], 30_000);
}

/** Run a command in a Pod's (first) container, as `kubectl exec` does; its stdout. */
export async function execInPod(pod: V1Pod, command: string[]): Promise<string> {
  const { name, namespace } = pod.metadata!;
  return script(['kubectl', 'exec', '-n', namespace!, name!, '--', ...command], 60_000);
}

/** Every Pod of these instances, deleted at once (test clean-up). */
export async function removeInstancePods(c: TestCluster, instances: string[], namespace = TEST_NAMESPACE) {
  for (const instance of instances) {
    await c.core.deleteCollectionNamespacedPod({
      namespace,
      labelSelector: ownerSelector(instance),
      gracePeriodSeconds: 0,
    });
  }
}

/** The pod bridge's gateway address (scripts/kubernetes.sh): where Pods reach the host. */
export const BRIDGE_ADDRESS = '10.244.0.1';

/** A free port on the pod bridge's address, for a router Pods reach (MODELDOCK_K8S_STORE=router). */
export async function freeBridgePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, BRIDGE_ADDRESS, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A TCP relay from the pod bridge to a router on loopback: Pods reach the router's store
 * through it while the test calls the router on loopback, where it asks for no key (on the
 * bridge itself it would ask for one). `url` is known before the router starts (its
 * runtime needs it), so the relay learns the router's port later (`to`).
 */
export async function bridgeRelay(): Promise<{
  url: string;
  to(port: number): void;
  close(): Promise<void>;
}> {
  let target: number | undefined;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (target === undefined) return socket.destroy();
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    socket.once('error', () => upstream.destroy());
    upstream.once('error', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve, reject) => {
    relay.once('error', reject);
    relay.listen(0, BRIDGE_ADDRESS, resolve);
  });
  const { port } = relay.address() as net.AddressInfo;
  return {
    url: `http://${BRIDGE_ADDRESS}:${port}`,
    to: (routerPort) => {
      target = routerPort;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    },
  };
}
