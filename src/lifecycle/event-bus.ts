/**
 * In-process fan-out of what happens (server state changes, operations finishing), for
 * the /v1/events stream and for tests that wait on a state instead of sleeping.
 */
import { EventEmitter, on } from 'node:events';
import type { OperationRecord, ServerRecord } from '../store/records.js';

export type LifecycleEvent =
  { type: 'server'; server: ServerRecord } | { type: 'operation'; operation: OperationRecord };

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // Every open /v1/events stream is a listener.
    this.emitter.setMaxListeners(0);
  }

  publish(event: LifecycleEvent): void {
    this.emitter.emit('event', event);
  }

  subscribe(listener: (event: LifecycleEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  async *stream(signal: AbortSignal): AsyncGenerator<LifecycleEvent> {
    try {
      for await (const [event] of on(this.emitter, 'event', { signal })) yield event as LifecycleEvent;
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    }
  }
}
