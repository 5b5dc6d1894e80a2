/**
 * modeldock's worker labels on a Pod. The rest of modeldock speaks `modeldock.<key>`
 * (LABELS); on Kubernetes they become prefixed label keys `modeldock.io/<key>`, the
 * cluster's convention for a tool's labels. Label values are restricted (63 characters
 * of [A-Za-z0-9_.-]); job ids and model names are not, so every label is also kept
 * verbatim in one annotation, which is what WorkerInfo.labels is read back from. Only
 * values that are valid label values become labels (selectors use managed, instance and
 * name, which always are).
 *
 * A Pod cannot be renamed, so a worker's name is the `modeldock.io/name` label, not the
 * Pod's own name: the warm pool hands a worker over by relabelling it (see
 * KubernetesRuntime.rename). The Pod's metadata.name is the name it was created under.
 */
import { LABELS } from '../runtime.js';

export const LABEL_PREFIX = 'modeldock.io/';
/** The worker's name (what inspect/start/stop/remove find it by). */
export const NAME_LABEL = `${LABEL_PREFIX}name`;
/** All of the worker's modeldock labels, verbatim, as JSON. */
export const LABELS_ANNOTATION = `${LABEL_PREFIX}labels`;

/** Kubernetes' rule for label values. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/**
 * Worker names: a DNS-1123 label, so the same string is a valid Pod name and label value.
 */
export const WORKER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `modeldock.job` → `modeldock.io/job`; keys outside modeldock's namespace stay as they are. */
export function toLabelKey(key: string): string {
  return key.startsWith('modeldock.') ? `${LABEL_PREFIX}${key.slice('modeldock.'.length)}` : key;
}

export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

/** The Pod's labels for modeldock labels: those with valid values, under prefixed keys. */
export function podLabels(labels: Record<string, string>, name: string): Record<string, string> {
  const result: Record<string, string> = { [NAME_LABEL]: name };
  for (const [key, value] of Object.entries(labels)) {
    if (isLabelValue(value)) result[toLabelKey(key)] = value;
  }
  return result;
}

/** The label selector for an instance's workers (and optionally one worker by name). */
export function ownerSelector(instance: string, name?: string): string {
  const parts = [`${toLabelKey(LABELS.managed)}=true`, `${toLabelKey(LABELS.instance)}=${instance}`];
  if (name !== undefined) parts.push(`${NAME_LABEL}=${name}`);
  return parts.join(',');
}

/** modeldock's labels of a Pod: the annotation, else (a Pod made by hand) its prefixed labels. */
export function modeldockLabels(
  labels: Record<string, string> | undefined,
  annotations: Record<string, string> | undefined,
): Record<string, string> {
  const raw = annotations?.[LABELS_ANNOTATION];
  if (raw) {
    try {
      const parsed = JSON.parse(raw) as unknown;
      if (parsed && typeof parsed === 'object') return parsed as Record<string, string>;
    } catch {
      // fall through to the labels
    }
  }
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (key.startsWith(LABEL_PREFIX) && key !== NAME_LABEL) {
      result[`modeldock.${key.slice(LABEL_PREFIX.length)}`] = value;
    }
  }
  return result;
}
