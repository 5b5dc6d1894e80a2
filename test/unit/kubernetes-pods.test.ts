/**
 * The pure parts of the Kubernetes runtime: the worker Pod it asks for, what a Pod's
 * status means, and which RuntimeEvents a Pod's change yields. The runtime itself is
 * tested against the real cluster (test/contract/runtime-kubernetes.test.ts).
 */
import type { V1ContainerState, V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { snapshotOf, transitions, type PodSnapshot } from '../../src/runtime/kubernetes/pod-events.js';
import {
  LABELS_ANNOTATION,
  NAME_LABEL,
  isLabelValue,
  modeldockLabels,
  ownerSelector,
  toLabelKey,
} from '../../src/runtime/kubernetes/pod-labels.js';
import { START_GATE, podForRestart, secretOfPod, workerPod } from '../../src/runtime/kubernetes/pod-spec.js';
import { toWorkerInfo } from '../../src/runtime/kubernetes/pod-status.js';
import { LABELS } from '../../src/runtime/runtime.js';

const template = {
  namespace: 'md',
  instance: 'prod',
  image: 'modeldock/worker:test',
  imagePullPolicy: 'Never' as const,
  store: { type: 'hostPath' as const, modelsDir: '/srv/models', datasetsDir: '/srv/datasets' },
  requestsRatio: 0.25,
  terminationGraceSeconds: 10,
};
const spec = {
  name: 'prod-inf-0001',
  labels: { [LABELS.server]: 'inf-0001', [LABELS.job]: 'job with spaces/and:colons', [LABELS.kind]: 'job' },
  limits: { memoryBytes: 1024 ** 3, nanoCpus: 1.5e9, pids: 256 },
};

describe('worker Pod', () => {
  const pod = workerPod(spec, template);
  const container = pod.spec!.containers[0]!;

  it('is hardened: non-root, read-only root, no capabilities, no escalation, no token, seccomp', () => {
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.equal(pod.spec!.shareProcessNamespace, true, "the sandbox's init reaps orphans");
    assert.equal(pod.spec!.securityContext!.runAsNonRoot, true);
    assert.equal(pod.spec!.securityContext!.runAsUser, 10001);
    assert.equal(pod.spec!.securityContext!.seccompProfile!.type, 'RuntimeDefault');
    assert.equal(container.securityContext!.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext!.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext!.capabilities!.drop, ['ALL']);
    assert.ok(container.volumeMounts!.filter((m) => m.mountPath !== '/tmp').every((m) => m.readOnly));
  });

  it("carries a worker secret of its own (or the spec's) and a body limit from its memory", () => {
    const env = Object.fromEntries(container.env!.map((e) => [e.name, e.value]));
    assert.ok((env.MODELDOCK_WORKER_SECRET ?? '').length >= 32);
    assert.equal(secretOfPod(pod), env.MODELDOCK_WORKER_SECRET);
    assert.notEqual(secretOfPod(workerPod(spec, template)), secretOfPod(pod), 'one secret per worker');
    const given = workerPod({ ...spec, env: { MODELDOCK_WORKER_SECRET: 's'.repeat(40) } }, template);
    assert.equal(secretOfPod(given), 's'.repeat(40));
    assert.equal(env.MODELDOCK_WORKER_BODY_LIMIT, String(Math.floor(1024 ** 3 / 2 / 24)));
  });

  it('never restarts by itself, starts gated, and probes readiness on the health endpoint', () => {
    assert.equal(pod.spec!.restartPolicy, 'Never');
    assert.deepEqual(pod.spec!.schedulingGates, [{ name: START_GATE }]);
    assert.equal(container.readinessProbe!.httpGet!.path, '/v2/health/ready');
    assert.equal(container.imagePullPolicy, 'Never');
  });

  it('limits are the worker limits, requests the configured fraction', () => {
    assert.deepEqual(container.resources!.limits, { cpu: '1500m', memory: String(1024 ** 3) });
    assert.deepEqual(container.resources!.requests, { cpu: '375m', memory: String(1024 ** 3 / 4) });
  });

  it('carries valid label keys, only valid values as labels, and every label verbatim', () => {
    const labels = pod.metadata!.labels!;
    assert.equal(labels['modeldock.io/managed'], 'true');
    assert.equal(labels['modeldock.io/instance'], 'prod');
    assert.equal(labels['modeldock.io/server'], 'inf-0001');
    assert.equal(labels[NAME_LABEL], 'prod-inf-0001');
    assert.equal(labels['modeldock.io/job'], undefined, 'not a valid label value');
    const verbatim = JSON.parse(pod.metadata!.annotations![LABELS_ANNOTATION]!);
    assert.equal(verbatim[LABELS.job], 'job with spaces/and:colons');
    assert.deepEqual(modeldockLabels(labels, pod.metadata!.annotations), verbatim);
    assert.equal(toLabelKey(LABELS.instance), 'modeldock.io/instance');
    assert.equal(isLabelValue('a'.repeat(64)), false);
    assert.equal(
      ownerSelector('prod', 'x'),
      'modeldock.io/managed=true,modeldock.io/instance=prod,modeldock.io/name=x',
    );
  });

  it('a PVC store is mounted read-only with models/ and datasets/ below it', () => {
    const withPvc = workerPod(spec, { ...template, store: { type: 'pvc', claim: 'models' } });
    assert.deepEqual(withPvc.spec!.volumes![0], {
      name: 'store',
      persistentVolumeClaim: { claimName: 'models', readOnly: true },
    });
    const mounts = withPvc.spec!.containers[0]!.volumeMounts!;
    assert.deepEqual(
      mounts.filter((m) => m.name === 'store').map((m) => [m.mountPath, m.subPath, m.readOnly]),
      [
        ['/models', 'models', true],
        ['/datasets', 'datasets', true],
      ],
    );
  });

  it('is created again without its gate, node or deadline, under the name it has now', () => {
    const ended: V1Pod = {
      ...pod,
      metadata: {
        ...pod.metadata,
        uid: 'u1',
        resourceVersion: '7',
        labels: { ...pod.metadata!.labels, [NAME_LABEL]: 'prod-inf-0002' },
      },
      spec: { ...pod.spec!, nodeName: 'n1', activeDeadlineSeconds: 1 },
    };
    const again = podForRestart(ended);
    assert.equal(again.spec!.schedulingGates, undefined);
    assert.equal(again.spec!.nodeName, undefined);
    assert.equal(again.spec!.activeDeadlineSeconds, undefined);
    assert.equal(again.metadata!.uid, undefined);
    assert.equal(again.metadata!.resourceVersion, undefined);
    assert.equal(again.metadata!.labels![NAME_LABEL], 'prod-inf-0002');
  });
});

describe("a foreign server's Pod", () => {
  const foreign = {
    ...spec,
    labels: { ...spec.labels, [LABELS.job]: 'a1', [LABELS.model]: 'm-133' },
    serverImage: {
      image: 'modeldock/triton:test',
      command: { command: 'tritonserver', args: ['--http-port={port}', '--grpc-port={grpcPort}'], env: {} },
      ports: { http: 8010, grpc: 8011 },
      execDir: '/opt/triton-backends',
    },
  };
  const pod = workerPod(foreign, template);
  const container = pod.spec!.containers[0]!;
  const env = Object.fromEntries(container.env!.map((e) => [e.name, e.value]));

  it('runs its image with the guard on the worker port in front of the server, which listens on loopback', () => {
    assert.equal(container.image, 'modeldock/triton:test');
    assert.deepEqual(container.command, ['node', '/app/guard.mjs']);
    assert.deepEqual(container.args, ['--', 'tritonserver', '--http-port=8010', '--grpc-port=8011']);
    assert.equal(env.MODELDOCK_GUARD_PORT, '8000');
    assert.equal(env.MODELDOCK_WORKER_HOST, '127.0.0.1');
    assert.equal(env.MODELDOCK_WORKER_PORT, '8010');
    assert.equal(env.MODELDOCK_MODELS_DIR, '/repository');
    assert.deepEqual(container.ports, [{ name: 'http', containerPort: 8000, protocol: 'TCP' }]);
    assert.ok((env.MODELDOCK_WORKER_SECRET ?? '').length >= 32, 'the guard checks a secret of its own');
  });

  it("is hardened as the worker's, with the job's model alone as its repository, read-only", () => {
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.equal(container.securityContext!.readOnlyRootFilesystem, true);
    assert.deepEqual(container.securityContext!.capabilities!.drop, ['ALL']);
    assert.deepEqual(container.resources!.limits, { cpu: '1500m', memory: String(1024 ** 3) });
    const volumes = Object.fromEntries(pod.spec!.volumes!.map((v) => [v.name, v]));
    const mounts = Object.fromEntries(container.volumeMounts!.map((m) => [m.mountPath, m]));
    assert.deepEqual(Object.keys(mounts).sort(), [
      '/datasets',
      '/opt/triton-backends',
      '/repository/a1',
      '/tmp',
    ]);
    assert.deepEqual(volumes[mounts['/repository/a1']!.name]!.hostPath, {
      path: '/srv/models/m-133',
      type: 'Directory',
    });
    assert.equal(mounts['/repository/a1']!.readOnly, true);
    assert.equal(mounts['/datasets']!.readOnly, true);
    // The exec directory its entry asks for, memory-backed and bounded, as /tmp is.
    assert.deepEqual(volumes[mounts['/opt/triton-backends']!.name]!.emptyDir, {
      medium: 'Memory',
      sizeLimit: '64Mi',
    });
    const withoutExec = workerPod(
      { ...foreign, serverImage: { ...foreign.serverImage, execDir: undefined } },
      template,
    );
    assert.equal(withoutExec.spec!.volumes!.length, 3);
  });

  it('pooled (no job yet): an empty memory-backed repository, the store read-only for its guard to link from', () => {
    const pooled = workerPod(
      { ...foreign, labels: { [LABELS.kind]: 'pool' }, emptyRepository: true },
      template,
    );
    const container = pooled.spec!.containers[0]!;
    const env = Object.fromEntries(container.env!.map((e) => [e.name, e.value]));
    assert.deepEqual(container.command, ['node', '/app/guard.mjs']);
    assert.equal(env.MODELDOCK_MODELS_DIR, '/repository');
    const mounts = Object.fromEntries(container.volumeMounts!.map((m) => [m.mountPath, m]));
    assert.deepEqual(Object.keys(mounts).sort(), [
      '/datasets',
      '/models',
      '/opt/triton-backends',
      '/repository',
      '/tmp',
    ]);
    assert.equal(mounts['/models']!.readOnly, true);
    const volumes = Object.fromEntries(pooled.spec!.volumes!.map((v) => [v.name, v]));
    assert.deepEqual(volumes[mounts['/repository']!.name]!.emptyDir, { medium: 'Memory', sizeLimit: '1Mi' });
  });

  it("a PVC store gives it the model's directory of the claim", () => {
    const withPvc = workerPod(foreign, { ...template, store: { type: 'pvc', claim: 'models' } });
    const mounts = withPvc.spec!.containers[0]!.volumeMounts!;
    assert.deepEqual(
      mounts.filter((m) => m.name === 'store').map((m) => [m.mountPath, m.subPath, m.readOnly]),
      [
        ['/repository/a1', 'models/m-133', true],
        ['/datasets', 'datasets', true],
      ],
    );
  });

  describe('with the router store (nothing of the store mounted)', () => {
    const router = { ...template, store: { type: 'router' as const, url: 'http://10.244.0.1:8080' } };
    const envOf = (p: V1Pod) => Object.fromEntries(p.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    const mountsOf = (p: V1Pod) =>
      Object.fromEntries(p.spec!.containers[0]!.volumeMounts!.map((m) => [m.mountPath, m]));

    it("its guard fetches the job's model from the router into an emptyDir repository on disk, bounded", () => {
      const fetching = workerPod(foreign, router);
      const env = envOf(fetching);
      assert.equal(env.MODELDOCK_GUARD_STORE_URL, 'http://10.244.0.1:8080');
      assert.equal(env.MODELDOCK_GUARD_FETCH_MODEL, 'm-133');
      assert.equal(env.MODELDOCK_GUARD_FETCH_AS, 'a1');
      assert.equal(env.MODELDOCK_GUARD_FETCH_MAX_BYTES, String(2 * 1024 ** 3));
      assert.equal(env.MODELDOCK_MODELS_DIR, '/repository');
      assert.equal(env.MODELDOCK_GUARD_STORE_DIR, undefined);
      // Nothing of modeldock's worker's store settings: the server has its repository alone.
      assert.equal(env.MODELDOCK_STORE_URL, undefined);
      assert.equal(env.MODELDOCK_DATASETS_DIR, undefined);
      const mounts = mountsOf(fetching);
      assert.deepEqual(Object.keys(mounts).sort(), ['/opt/triton-backends', '/repository', '/tmp']);
      const volumes = Object.fromEntries(fetching.spec!.volumes!.map((v) => [v.name, v]));
      assert.deepEqual(
        { ...volumes[mounts['/repository']!.name] },
        {
          name: 'repository',
          emptyDir: { sizeLimit: String(2 * 1024 ** 3) },
        },
      );
      assert.ok(fetching.spec!.volumes!.every((v) => !v.hostPath && !v.persistentVolumeClaim));
    });

    it('pooled: the same repository, the router to fetch from, and no model named yet', () => {
      const pooled = workerPod(
        { ...foreign, labels: { [LABELS.kind]: 'pool' }, emptyRepository: true },
        router,
      );
      const env = envOf(pooled);
      assert.equal(env.MODELDOCK_GUARD_STORE_URL, 'http://10.244.0.1:8080');
      assert.equal(env.MODELDOCK_GUARD_FETCH_MODEL, undefined);
      assert.equal(env.MODELDOCK_GUARD_STORE_DIR, undefined);
      assert.deepEqual(Object.keys(mountsOf(pooled)).sort(), ['/opt/triton-backends', '/repository', '/tmp']);
      assert.ok(pooled.spec!.volumes!.every((v) => !v.hostPath && !v.persistentVolumeClaim));
    });
  });
});

function withStatus(status: V1Pod['status'], extra: Partial<V1Pod['metadata']> = {}): V1Pod {
  const pod = workerPod(spec, template);
  return { ...pod, metadata: { ...pod.metadata, uid: 'uid-1', ...extra }, status };
}

/** The worker container's status in the given state (the rest as the kubelet reports it). */
function workerContainer(state: V1ContainerState): V1ContainerStatus[] {
  return [{ name: 'worker', image: 'x', imageID: '', ready: false, restartCount: 0, state }];
}

describe('Pod status as a worker', () => {
  it('a gated Pod is created, not running, without an endpoint', () => {
    const info = toWorkerInfo(withStatus({ phase: 'Pending' }));
    assert.deepEqual(
      [info.status, info.running, info.endpoint, info.name],
      ['created', false, null, 'prod-inf-0001'],
    );
  });

  it('a running container with an IP is running at the Pod IP', () => {
    const info = toWorkerInfo(
      withStatus({
        phase: 'Running',
        podIP: '10.244.0.7',
        containerStatuses: workerContainer({ running: { startedAt: new Date(0) } }),
      }),
    );
    assert.deepEqual([info.status, info.running, info.endpoint], ['running', true, 'http://10.244.0.7:8000']);
  });

  it('an image missing on the node is a one-line error naming the fix', () => {
    const info = toWorkerInfo(
      withStatus({
        phase: 'Pending',
        containerStatuses: workerContainer({ waiting: { reason: 'ErrImageNeverPull' } }),
      }),
    );
    assert.equal(info.running, false);
    assert.match(info.error!, /modeldock\/worker:test is not on node .*ErrImageNeverPull.*import-image/);
    assert.ok(!info.error!.includes('\n'));
  });

  it('an OOM kill is an exited worker with oomKilled', () => {
    const info = toWorkerInfo(
      withStatus({
        phase: 'Failed',
        podIP: '10.244.0.7',
        containerStatuses: workerContainer({ terminated: { exitCode: 137, reason: 'OOMKilled' } }),
      }),
    );
    assert.deepEqual(
      [info.status, info.running, info.exitCode, info.oomKilled, info.endpoint],
      ['exited', false, 137, true, null],
    );
  });

  it('a Pod being deleted is removing', () => {
    const info = toWorkerInfo(withStatus({ phase: 'Running' }, { deletionTimestamp: new Date() }));
    assert.equal(info.status, 'removing');
  });
});

describe('Pod changes as RuntimeEvents', () => {
  const snap = (phase: PodSnapshot['phase'], extra: Partial<PodSnapshot> = {}): PodSnapshot => ({
    uid: 'u',
    name: 'w',
    labels: { [LABELS.job]: 'j' },
    phase,
    exitCode: null,
    oomKilled: false,
    ...extra,
  });
  const types = (before: PodSnapshot | undefined, after: PodSnapshot | undefined) =>
    transitions(before, after, 0).map((e) => e.type);

  it('maps each change once', () => {
    assert.deepEqual(types(undefined, snap('created')), ['create']);
    assert.deepEqual(types(snap('created'), snap('running')), ['start']);
    assert.deepEqual(types(snap('running'), snap('running')), []);
    assert.deepEqual(types(snap('running'), snap('exited', { exitCode: 137, oomKilled: true })), [
      'oom',
      'die',
    ]);
    assert.deepEqual(types(snap('exited'), undefined), ['destroy']);
    assert.deepEqual(types(snap('running'), undefined), ['die', 'destroy']);
    assert.deepEqual(types(undefined, snap('exited')), ['create', 'start', 'die']);
  });

  it('a die carries the exit code and the labels', () => {
    const [die] = transitions(snap('running'), snap('exited', { exitCode: 143 }), 5);
    assert.deepEqual(die, { type: 'die', name: 'w', labels: { [LABELS.job]: 'j' }, exitCode: 143, time: 5 });
  });

  it('a snapshot reads the worker name from its label', () => {
    assert.equal(snapshotOf(withStatus({ phase: 'Pending' })).name, 'prod-inf-0001');
  });
});
