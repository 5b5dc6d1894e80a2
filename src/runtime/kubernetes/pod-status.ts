/**
 * What a Pod's status means as a WorkerInfo. A worker Pod is one container under
 * restartPolicy Never, so it moves one way: created (gated, scheduling, container
 * being created) → running → exited; a Pod being deleted is `removing` (toWorkerInfo).
 *
 * A Pod that cannot start says why in its container's waiting reason; the reasons that
 * need an operator (image not on the node, unschedulable) become a one-line `error`
 * naming the fix, which start() turns into a 503.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { WorkerInfo, WorkerStatus } from '../runtime.js';
import { NAME_LABEL, modeldockLabels } from './pod-labels.js';
import { START_GATE, WORKER_CONTAINER, WORKER_PORT } from './pod-spec.js';

/** Waiting reasons that do not go away by themselves. */
const STUCK_REASONS = new Set([
  'ErrImageNeverPull',
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

export interface PodState {
  status: WorkerStatus;
  running: boolean;
  exitCode: number | null;
  oomKilled: boolean;
  error: string | null;
  /** The worker cannot start without an operator (image missing, unschedulable, …). */
  stuck: boolean;
  startedAt: string | null;
  finishedAt: string | null;
}

export function podState(pod: V1Pod): PodState {
  const container = pod.status?.containerStatuses?.find((c) => c.name === WORKER_CONTAINER);
  const state = container?.state;
  const base = {
    exitCode: null,
    oomKilled: false,
    error: null,
    stuck: false,
    startedAt: null,
    finishedAt: null,
  };
  if (state?.terminated) {
    const t = state.terminated;
    const oomKilled = t.reason === 'OOMKilled';
    return {
      ...base,
      status: 'exited',
      running: false,
      exitCode: t.exitCode,
      oomKilled,
      error: t.reason && !['Completed', 'Error', 'OOMKilled'].includes(t.reason) ? t.reason : null,
      startedAt: iso(t.startedAt),
      finishedAt: iso(t.finishedAt),
    };
  }
  if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') {
    // Ended before its container ran (evicted, deadline exceeded while creating, …).
    const why = [pod.status.reason, pod.status.message].filter(Boolean).join(': ');
    return { ...base, status: 'exited', running: false, error: why || `pod ${pod.status.phase}` };
  }
  if (state?.running) {
    return { ...base, status: 'running', running: true, startedAt: iso(state.running.startedAt) };
  }
  const waiting = state?.waiting;
  if (waiting?.reason && STUCK_REASONS.has(waiting.reason)) {
    return {
      ...base,
      status: 'created',
      running: false,
      error: stuckMessage(pod, waiting.reason, waiting.message),
      stuck: true,
    };
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return {
      ...base,
      status: 'created',
      running: false,
      error: `no node can run the worker pod ${pod.metadata?.name}: ${scheduled.message ?? 'unschedulable'} (lower MODELDOCK_WORKER_MEMORY / MODELDOCK_WORKER_CPUS or MODELDOCK_K8S_REQUESTS_RATIO, or add nodes)`,
      stuck: true,
    };
  }
  return { ...base, status: 'created', running: false };
}

function stuckMessage(pod: V1Pod, reason: string, message: string | undefined): string {
  const image = pod.spec?.containers.find((c) => c.name === WORKER_CONTAINER)?.image ?? '?';
  const node = pod.spec?.nodeName ?? 'its node';
  if (reason === 'ErrImageNeverPull' || reason === 'ErrImagePull' || reason === 'ImagePullBackOff') {
    return `worker image ${image} is not on node ${node} and cannot be pulled (${reason}): load it into the node's container runtime (scripts/kubernetes.sh import-image ${image}) or push it to a registry the cluster can pull from`;
  }
  return `worker pod ${pod.metadata?.name} cannot start its container (${reason}${message ? `: ${message}` : ''})`;
}

export function isGated(pod: V1Pod): boolean {
  return (pod.spec?.schedulingGates ?? []).some((g) => g.name === START_GATE);
}

export function toWorkerInfo(pod: V1Pod): WorkerInfo {
  const state = podState(pod);
  const ip = pod.status?.podIP;
  // A Pod being deleted is on its way out, whatever its container still does.
  const removing = Boolean(pod.metadata?.deletionTimestamp);
  const running = state.running && Boolean(ip) && !removing;
  return {
    id: pod.metadata?.uid ?? '',
    name: pod.metadata?.labels?.[NAME_LABEL] ?? pod.metadata?.name ?? '',
    labels: modeldockLabels(pod.metadata?.labels, pod.metadata?.annotations),
    status: removing ? 'removing' : state.status,
    running,
    exitCode: state.exitCode,
    oomKilled: state.oomKilled,
    error: state.error,
    // By pod IP: one hop, no Service per worker to create, wait for (kube-proxy sync
    // takes seconds) and clean up; the router needs one specific worker, never a balanced
    // set. `[ip]` for IPv6.
    endpoint: running ? `http://${ip!.includes(':') ? `[${ip}]` : ip}:${WORKER_PORT}` : null,
    startedAt: state.startedAt,
    finishedAt: state.finishedAt,
  };
}

function iso(value: Date | string | undefined): string | null {
  if (value === undefined) return null;
  return value instanceof Date ? value.toISOString() : String(value);
}
