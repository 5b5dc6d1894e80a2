/**
 * Server-sent events from /v1/events, read with fetch (no EventSource: the browser's
 * cannot send an API key header, and one reader serves the CLI and the console alike),
 * parsed by eventsource-parser.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

/** Yields each event of an SSE body until it ends or the signal aborts. */
export async function* readEvents(
  body: AsyncIterable<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<EventSourceMessage> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => queue.push(event) });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of body) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      while (queue.length > 0) yield queue.shift()!;
    }
  } catch (error) {
    if (!signal?.aborted) throw error;
  }
}
