/**
 * The console's way to the router: fetch with the API key (kept in sessionStorage, sent
 * as Authorization: Bearer), and /v1/events read through fetch streaming, because the
 * browser's EventSource cannot send that header.
 */
import { createParser } from 'eventsource-parser';

const KEY = 'modeldock.apiKey';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (key: string) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey.get();
  return { accept: 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

async function check(response: Response): Promise<Response> {
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { message?: string } };
    if (body.error?.message) message = `${response.status}: ${body.error.message}`;
  } catch {
    // not JSON
  }
  throw new ApiError(response.status, message);
}

export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const response = await check(await fetch(path, { headers: headers(), signal: signal ?? null }));
  return (await response.json()) as T;
}

export async function getText(path: string, signal?: AbortSignal): Promise<string> {
  const response = await check(await fetch(path, { headers: headers(), signal: signal ?? null }));
  return response.text();
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  const response = await check(
    await fetch(path, {
      method: 'POST',
      headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
  );
  return (await response.json()) as T;
}

/** Calls onText with each chunk of a streaming text answer until it ends or the signal aborts. */
export async function streamText(
  path: string,
  signal: AbortSignal,
  onText: (text: string) => void,
): Promise<void> {
  const response = await check(await fetch(path, { headers: headers({ accept: 'text/plain' }), signal }));
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onText(value);
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}

/** /v1/events: calls onEvent for each event; resolves when the stream ends. */
export async function streamEvents(
  signal: AbortSignal,
  onOpen: () => void,
  onEvent: (type: string, data: unknown) => void,
): Promise<void> {
  const parser = createParser({ onEvent: (e) => e.event && onEvent(e.event, JSON.parse(e.data)) });
  const response = await check(
    await fetch('/v1/events', { headers: headers({ accept: 'text/event-stream' }), signal }),
  );
  onOpen();
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}
