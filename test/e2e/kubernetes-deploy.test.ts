/**
 * deploy/kubernetes on the real test cluster: `kubectl apply -k` of an overlay that adds
 * only what a real installation brings itself (the images under test, loaded on the
 * node; the API key Secret; two PersistentVolumes, since this cluster has no storage
 * provisioner; the router's URL as its Pod IP, since this cluster has no DNS), then the
 * five original requests verbatim through the router's Service, with the key. Everything
 * else (RBAC, Deployment, PVCs, Service, hardening, workers fetching their store from the
 * router) is the base as shipped.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROTO_FILE } from '../../src/api/grpc/grpc-server.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { cluster, type TestCluster } from '../helpers/kubernetes.js';
import { REPO_ROOT, ROUTER_IMAGE, WORKER_IMAGE } from '../helpers/paths.js';

const NAMESPACE = 'modeldock';
const [create, load, unload, terminate, temp] = ORIGIN_REQUESTS;

function splitImage(image: string): { name: string; tag: string } {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/')
    ? { name: image.slice(0, at), tag: image.slice(at + 1) }
    : { name: image, tag: 'latest' };
}

describe('deploy/kubernetes: the router in the cluster, the original requests through its Service', () => {
  let c: TestCluster;
  let dir: string;
  let url: string;
  let serviceIp: string;
  const apiKey = randomBytes(24).toString('hex');

  const send = async (body: string) => {
    const response = await fetch(`${url}/inference_router/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body,
      signal: AbortSignal.timeout(120_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };

  before(async () => {
    c = await cluster();
    const { execFile } = await import('node:child_process');
    await new Promise<void>((resolve, reject) =>
      execFile(
        'bash',
        [path.join(REPO_ROOT, 'scripts/kubernetes.sh'), 'import-image', ROUTER_IMAGE],
        { timeout: 300_000 },
        (error) => (error ? reject(error) : resolve()),
      ),
    );
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-k8s-deploy-'));
    // hostPath volumes for the two claims; the router runs as uid 10001.
    for (const volume of ['state', 'store']) {
      await mkdir(path.join(dir, volume));
      await chmod(path.join(dir, volume), 0o777);
    }
    const overlay = path.join(dir, 'overlay');
    await mkdir(overlay);
    const router = splitImage(ROUTER_IMAGE);
    const pv = (claim: string, volume: string, size: string) => `apiVersion: v1
kind: PersistentVolume
metadata: { name: ${NAMESPACE}-test-${volume} }
spec:
  capacity: { storage: ${size} }
  accessModes: ["ReadWriteOnce"]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: ""
  claimRef: { namespace: ${NAMESPACE}, name: ${claim} }
  hostPath: { path: ${path.join(dir, volume)}, type: Directory }
`;
    await writeFile(
      path.join(overlay, 'volumes.yaml'),
      `${pv('modeldock-state', 'state', '1Gi')}---\n${pv('modeldock-store', 'store', '5Gi')}`,
    );
    await writeFile(
      path.join(overlay, 'test-images.yaml'),
      `apiVersion: apps/v1
kind: Deployment
metadata: { name: modeldock-router }
spec:
  template:
    spec:
      initContainers:
        - { name: seed-store, imagePullPolicy: Never }
      containers:
        - name: router
          imagePullPolicy: Never
          env:
            - { name: MODELDOCK_WORKER_IMAGE, value: "${WORKER_IMAGE}" }
            - { name: MODELDOCK_K8S_IMAGE_PULL_POLICY, value: Never }
            - { name: MODELDOCK_LOG_LEVEL, value: info }
            # No cluster DNS here: the workers reach the router at its Pod IP (a patch's
            # entries come first in the merged list, so POD_IP is defined before its use).
            - name: POD_IP
              valueFrom:
                fieldRef: { fieldPath: status.podIP }
            - { name: MODELDOCK_K8S_ROUTER_URL, value: "http://$(POD_IP):8080" }
`,
    );
    await writeFile(
      path.join(overlay, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ${path.relative(overlay, path.join(REPO_ROOT, 'deploy/kubernetes'))}
  - volumes.yaml
patches:
  - path: test-images.yaml
images:
  - { name: modeldock/router, newName: ${router.name}, newTag: "${router.tag}" }
secretGenerator:
  - name: modeldock-api-key
    namespace: ${NAMESPACE}
    literals: ["api-key=${apiKey}"]
    options: { disableNameSuffixHash: true }
`,
    );
    await c.kubectl(['apply', '-k', overlay]);
    try {
      await c.kubectl(
        ['-n', NAMESPACE, 'rollout', 'status', 'deployment/modeldock-router', '--timeout=120s'],
        150_000,
      );
    } catch (error) {
      // Say why: the Pods' state and events, and what the router printed.
      const pods = await c.kubectl(['-n', NAMESPACE, 'describe', 'pods']).catch((e: Error) => e.message);
      const logs = await c
        .kubectl(['-n', NAMESPACE, 'logs', 'deployment/modeldock-router', '--all-containers', '--tail=30'])
        .catch((e: Error) => e.message);
      throw new Error(`${(error as Error).message}\n${pods.slice(-3000)}\n${logs}`);
    }
    const ip = await c.kubectl([
      '-n',
      NAMESPACE,
      'get',
      'service',
      'modeldock',
      '-o',
      'jsonpath={.spec.clusterIP}',
    ]);
    serviceIp = ip;
    url = `http://${ip}`;
    // kube-proxy programs a new Service within seconds: wait until it answers.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`the Service ${url} did not answer within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  after(async () => {
    if (c) {
      // Deleting the namespace removes the router, its workers and the claims; then the volumes.
      await c
        .kubectl(['delete', 'namespace', NAMESPACE, '--wait=true', '--timeout=120s'], 150_000)
        .catch(() => undefined);
      await c
        .kubectl([
          'delete',
          'pv',
          `${NAMESPACE}-test-state`,
          `${NAMESPACE}-test-store`,
          '--ignore-not-found',
          '--timeout=60s',
        ])
        .catch(() => undefined);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs the five original requests verbatim through the Service', async () => {
    const created = await send(create);
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.state, 'ready');
    assert.equal(created.body.server_id, 'inf-0001');
    const pods = JSON.parse(
      await c.kubectl(['-n', NAMESPACE, 'get', 'pods', '-l', 'modeldock.io/job=a1', '-o', 'json']),
    ) as {
      items: {
        metadata: { name: string };
        spec: {
          serviceAccountName?: string;
          automountServiceAccountToken?: boolean;
          volumes?: {
            name: string;
            emptyDir?: unknown;
            persistentVolumeClaim?: unknown;
            hostPath?: unknown;
          }[];
        };
      }[];
    };
    assert.equal(pods.items.length, 1, 'one worker Pod beside the router');
    assert.equal(pods.items[0]!.spec.automountServiceAccountToken, false);
    // The worker mounts no store (it fetched its model from the router), only its caches.
    const volumes = pods.items[0]!.spec.volumes ?? [];
    assert.deepEqual(
      volumes.filter((v) => v.persistentVolumeClaim || v.hostPath).map((v) => v.name),
      [],
    );
    assert.ok(volumes.some((v) => v.name === 'cache' && v.emptyDir));

    const loaded = await send(load);
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    assert.equal(loaded.body.state, 'ready');
    const unloaded = await send(unload);
    assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
    assert.equal(unloaded.body.state, 'unloaded');
    const terminated = await send(terminate);
    assert.equal(terminated.status, 200, JSON.stringify(terminated.body));
    assert.equal(terminated.body.state, 'terminated');
    const ran = await send(temp);
    assert.equal(ran.status, 200, JSON.stringify(ran.body).slice(0, 500));
    assert.equal(ran.body.state, 'terminated');
    assert.ok(ran.body.result.accuracy > 0.9, `accuracy ${ran.body.result.accuracy}`);
    const left = await c.kubectl([
      '-n',
      NAMESPACE,
      'get',
      'pods',
      '-l',
      'modeldock.io/managed=true',
      '-o',
      'name',
    ]);
    assert.equal(left, '', 'no worker Pod left');
  });

  it('answers gRPC through the Service (port 8081), with the same key', async () => {
    const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true, defaults: true });
    const Service = (grpc.loadPackageDefinition(definition) as any).inference.GRPCInferenceService;
    const client = new Service(`${serviceIp}:8081`, grpc.credentials.createInsecure());
    const rpc = (method: string, key?: string) => {
      const metadata = new grpc.Metadata();
      if (key) metadata.set('authorization', `Bearer ${key}`);
      return new Promise<unknown>((resolve, reject) =>
        client[method](
          {},
          metadata,
          { deadline: Date.now() + 20_000 },
          (error: Error | null, answer: unknown) => (error ? reject(error) : resolve(answer)),
        ),
      );
    };
    try {
      assert.deepEqual(await rpc('ServerLive'), { live: true });
      await assert.rejects(rpc('ServerMetadata'), (error: grpc.ServiceError) => {
        assert.equal(error.code, grpc.status.UNAUTHENTICATED);
        return true;
      });
      assert.equal(((await rpc('ServerMetadata', apiKey)) as { name: string }).name.length > 0, true);
    } finally {
      client.close();
    }
  });
});
