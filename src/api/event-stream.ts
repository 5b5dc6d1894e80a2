/**
 * `/v1/events` as server-sent events, with backpressure: what the router holds for one
 * subscriber is bounded (a client that stops reading is dropped with a final `dropped`
 * event once its unsent bytes pass the bound), and so is the number of streams open at
 * once (429 past it). Without both, one client that connects and never reads makes the
 * router buffer every later event for it.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { TooManyRequestsError } from '../errors.js';
import type { EventBus, LifecycleEvent } from '../lifecycle/event-bus.js';
import { presentOperation, presentServer } from './presenters.js';

/** Unsent bytes one subscriber may hold in the router before it is dropped. */
export const EVENT_BUFFER_BYTES = 1024 * 1024;
/** A dropped client that still does not read is cut off after this long. */
const DROP_GRACE_MS = 30_000;

function format(event: LifecycleEvent): string {
  const data =
    event.type === 'server'
      ? { type: 'server', server: presentServer(event.server) }
      : { type: 'operation', operation: presentOperation(event.operation) };
  return `event: ${event.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class EventStreams {
  private open = 0;
  /** The open streams' responses, ended when the router shuts down. */
  private readonly responses = new Set<ServerResponse>();

  constructor(
    private readonly events: EventBus,
    private readonly maxStreams: number,
    private readonly bufferBytes = EVENT_BUFFER_BYTES,
  ) {}

  /** Serve one stream until the client leaves or is dropped; 429 when the cap is reached. */
  serve(request: FastifyRequest, reply: FastifyReply): void {
    if (this.open >= this.maxStreams) {
      throw new TooManyRequestsError(
        `${this.open} event streams are open, the most this router serves at once (MODELDOCK_EVENT_STREAMS); close one or try again later`,
      );
    }
    this.open++;
    const raw = reply.raw;
    this.responses.add(raw);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      unsubscribe();
      this.responses.delete(raw);
      this.open--;
    };
    const unsubscribe = this.events.subscribe((event) => {
      if (raw.writableLength <= this.bufferBytes) {
        raw.write(format(event));
        return;
      }
      // Too far behind: say so, stop feeding it, and give it a while to read the rest.
      const reason = `the client read too slowly (more than ${this.bufferBytes} bytes unsent); reconnect and re-read state`;
      // The connection goes with the stream: it was this stream's alone.
      const socket = raw.socket;
      raw.end(`event: dropped\ndata: ${JSON.stringify({ type: 'dropped', reason })}\n\n`, () =>
        socket?.end(),
      );
      close();
      setTimeout(() => raw.destroy(), DROP_GRACE_MS).unref();
    });
    request.raw.once('close', close);
    raw.once('close', close);
    reply.hijack();
    raw.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    raw.write(': modeldock events\n\n');
  }

  /** End every open stream, and its connection (the router is shutting down; clients reconnect). */
  endAll(): void {
    for (const raw of [...this.responses]) {
      const socket = raw.socket;
      raw.end(() => socket?.end());
    }
  }
}
