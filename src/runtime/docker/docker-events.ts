/**
 * A never-ending, self-healing subscription to the engine's container events. When
 * the stream breaks (engine restart, socket closed), it reconnects with back-off and
 * resumes from the last event seen, so no event in between is lost; duplicates from
 * the overlap are dropped.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import { parseNdjson } from '../ndjson.js';
import type { DockerEngine, EngineEvent } from './docker-engine.js';
import { abortableDelay } from '../abortable-delay.js';

interface RawEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number | string;
}

export interface EventSubscriptionOptions {
  labels: string[];
  signal: AbortSignal;
  logger?: Logger;
  /** Called after a reconnection: events may have been missed while away, so resync. */
  onReconnect?: () => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export async function* subscribeEngineEvents(
  engine: DockerEngine,
  options: EventSubscriptionOptions,
): AsyncGenerator<EngineEvent> {
  const { signal, logger } = options;
  const minBackoff = options.minBackoffMs ?? 200;
  const maxBackoff = options.maxBackoffMs ?? 5_000;
  let lastNano: bigint | undefined;
  const seenAtLast = new Set<string>();
  let backoff = minBackoff;
  let connectedBefore = false;

  while (!signal.aborted) {
    try {
      const stream = await engine.eventStream(options.labels, lastNano, signal);
      if (connectedBefore) options.onReconnect?.();
      connectedBefore = true;
      backoff = minBackoff;
      for await (const raw of parseNdjson(stream as AsyncIterable<Buffer>, (line) =>
        logger?.warn({ line }, 'malformed engine event'),
      )) {
        const event = toEngineEvent(raw as RawEvent);
        if (!event) continue;
        // Resuming with `since` replays events of the same nanosecond: skip those seen.
        const key = `${event.timeNano}/${event.id}/${event.action}`;
        if (lastNano !== undefined && event.timeNano < lastNano) continue;
        if (event.timeNano === lastNano && seenAtLast.has(key)) continue;
        if (event.timeNano !== lastNano) seenAtLast.clear();
        seenAtLast.add(key);
        lastNano = event.timeNano;
        yield event;
      }
      if (signal.aborted) return;
      logger?.warn('engine event stream ended; reconnecting');
    } catch (error) {
      if (signal.aborted) return;
      logger?.warn(
        { err: errorMessage(error), retryInMs: backoff },
        'engine event stream failed; reconnecting',
      );
    }
    await abortableDelay(backoff, signal);
    backoff = Math.min(backoff * 2, maxBackoff);
  }
}

function toEngineEvent(raw: RawEvent): EngineEvent | undefined {
  if (raw.Type !== undefined && raw.Type !== 'container') return undefined;
  const action = (raw.Action ?? raw.status ?? '').split(':')[0] ?? '';
  const id = raw.Actor?.ID ?? raw.id;
  if (!action || !id) return undefined;
  const attributes = raw.Actor?.Attributes ?? {};
  const { name = '', exitCode, ...rest } = attributes;
  const timeNano = raw.timeNano !== undefined ? BigInt(raw.timeNano) : BigInt(raw.time ?? 0) * 1_000_000_000n;
  return {
    action,
    id,
    name,
    labels: rest,
    ...(exitCode !== undefined ? { exitCode: Number(exitCode) } : {}),
    timeNano,
  };
}
