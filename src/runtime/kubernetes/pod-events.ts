/**
 * RuntimeEvents from the cluster: a list, then a watch of the namespace's labelled Pods
 * from the list's resourceVersion. A watch that ends or breaks (apiserver restart,
 * timeout) resumes from the last resourceVersion seen, so nothing in between is lost;
 * when that version is too old for the apiserver (410 Gone) or the watch keeps failing,
 * the Pods are listed again and compared with what was known, which yields the events
 * missed meanwhile (a Pod that vanished is a `destroy`, one that ended a `die`).
 *
 * Events are derived from state, not from the watch's verbs: each Pod's last known
 * snapshot is compared with the new one (see transitions), so a replayed or repeated
 * update yields nothing new.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import type { RuntimeEvent, RuntimeEventType } from '../runtime.js';
import type { KubeApi } from './kube-api.js';
import { podState } from './pod-status.js';
import { NAME_LABEL, modeldockLabels } from './pod-labels.js';
import { abortableDelay } from '../abortable-delay.js';

export interface PodSnapshot {
  uid: string;
  name: string;
  labels: Record<string, string>;
  phase: 'created' | 'running' | 'exited';
  exitCode: number | null;
  oomKilled: boolean;
}

export function snapshotOf(pod: V1Pod): PodSnapshot {
  const state = podState(pod);
  return {
    uid: pod.metadata?.uid ?? '',
    name: pod.metadata?.labels?.[NAME_LABEL] ?? pod.metadata?.name ?? '',
    labels: modeldockLabels(pod.metadata?.labels, pod.metadata?.annotations),
    phase: state.status === 'running' ? 'running' : state.status === 'exited' ? 'exited' : 'created',
    exitCode: state.exitCode,
    oomKilled: state.oomKilled,
  };
}

/**
 * The events between two snapshots of one Pod (`before` undefined: new to us; `after`
 * undefined: deleted). Pure, so the mapping is unit-tested without a cluster.
 */
export function transitions(
  before: PodSnapshot | undefined,
  after: PodSnapshot | undefined,
  time: number,
): RuntimeEvent[] {
  const events: RuntimeEvent[] = [];
  const emit = (type: RuntimeEventType, snap: PodSnapshot) =>
    events.push({
      type,
      name: snap.name,
      labels: snap.labels,
      ...(type === 'die' && snap.exitCode !== null ? { exitCode: snap.exitCode } : {}),
      time,
    });
  const current = after ?? before;
  if (!current) return events;
  if (!before) emit('create', current);
  const was = before?.phase ?? 'created';
  const now = after?.phase ?? (was === 'running' ? 'exited' : was);
  if (now === 'running' && was === 'created') emit('start', current);
  if (now === 'exited' && was !== 'exited') {
    if (was === 'created') emit('start', current);
    if (current.oomKilled) emit('oom', current);
    emit('die', current);
  }
  if (!after) emit('destroy', current);
  return events;
}

export interface WatchOptions {
  labelSelector: string;
  signal: AbortSignal;
  logger?: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

type WatchItem = { kind: 'pod'; type: string; pod: V1Pod } | { kind: 'end'; error?: unknown; gone: boolean };

export async function* watchPodEvents(api: KubeApi, options: WatchOptions): AsyncGenerator<RuntimeEvent> {
  const { signal, logger } = options;
  const minBackoff = options.minBackoffMs ?? 200;
  const maxBackoff = options.maxBackoffMs ?? 5_000;
  const known = new Map<string, PodSnapshot>();
  let resourceVersion: string | undefined;
  let needList = true;
  let first = true;
  let backoff = minBackoff;

  while (!signal.aborted) {
    try {
      if (needList) {
        const list = await api.listPods(options.labelSelector, signal);
        resourceVersion = list.metadata?.resourceVersion;
        const seen = new Set<string>();
        for (const pod of list.items) {
          const snap = snapshotOf(pod);
          seen.add(snap.uid);
          // The first list is the starting point (events are about what happens from now);
          // a relist after a break yields what was missed.
          if (!first) yield* transitions(known.get(snap.uid), snap, Date.now());
          known.set(snap.uid, snap);
        }
        for (const [uid, snap] of known) {
          if (seen.has(uid)) continue;
          known.delete(uid);
          yield* transitions(snap, undefined, Date.now());
        }
        first = false;
        needList = false;
      }
      for await (const item of watchOnce(api, options.labelSelector, resourceVersion!, signal)) {
        if (item.kind === 'end') {
          if (item.gone) needList = true;
          else if (item.error) throw item.error;
          break;
        }
        backoff = minBackoff;
        const version = item.pod.metadata?.resourceVersion;
        if (version) resourceVersion = version;
        if (item.type === 'BOOKMARK') continue;
        const snap = snapshotOf(item.pod);
        const before = known.get(snap.uid);
        const after = item.type === 'DELETED' ? undefined : snap;
        // A deleted Pod's last state first (it may have ended on its way out), then its end.
        const events =
          item.type === 'DELETED'
            ? [...transitions(before, snap, Date.now()), ...transitions(snap, undefined, Date.now())]
            : transitions(before, after, Date.now());
        if (after) known.set(snap.uid, after);
        else known.delete(snap.uid);
        yield* dedupe(events);
      }
      if (signal.aborted) return;
    } catch (error) {
      if (signal.aborted) return;
      logger?.warn({ err: errorMessage(error), retryInMs: backoff }, 'kubernetes pod watch failed; resuming');
      // After repeated failures the version may be long gone: list afresh.
      if (backoff >= maxBackoff) needList = true;
      await abortableDelay(backoff, signal);
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  }
}

/** transitions(before, snap) then (snap, undefined) may repeat a `die`; keep the first of each type. */
function dedupe(events: RuntimeEvent[]): RuntimeEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    const key = `${e.type}/${e.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** One watch request as an async stream of its events, ending with one `end` item. */
async function* watchOnce(
  api: KubeApi,
  labelSelector: string,
  resourceVersion: string,
  signal: AbortSignal,
): AsyncGenerator<WatchItem> {
  const queue: WatchItem[] = [];
  let wake: (() => void) | undefined;
  const push = (item: WatchItem) => {
    queue.push(item);
    wake?.();
  };
  let ended = false;
  const controller = await api.watcher.watch(
    `/api/v1/namespaces/${api.namespace}/pods`,
    { labelSelector, resourceVersion, allowWatchBookmarks: true },
    (type, object: unknown) => {
      if (type === 'ERROR') {
        const status = object as { code?: number; message?: string };
        ended = true;
        push({ kind: 'end', gone: status.code === 410, error: new Error(status.message ?? 'watch error') });
        return;
      }
      push({ kind: 'pod', type, pod: object as V1Pod });
    },
    (error: unknown) => {
      if (ended) return;
      ended = true;
      const gone = (error as { statusCode?: number; code?: number } | null)?.statusCode === 410;
      push({ kind: 'end', gone, ...(error ? { error } : {}) });
    },
  );
  const onAbort = () => {
    controller.abort();
    wake?.();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (!signal.aborted) {
      const item = queue.shift();
      if (item) {
        yield item;
        if (item.kind === 'end') return;
        continue;
      }
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    controller.abort();
  }
}
