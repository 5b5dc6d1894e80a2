/**
 * The CLI's only way to the router: its HTTP API, through undici's fetch. Failures come
 * back as two errors: ApiError (the router answered with an error body) and
 * RouterUnreachableError (nothing answered), each with its exit code.
 */
import { fetch, type Response } from 'undici';
import { EXIT, exitCodeForStatus } from './exit-codes.js';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message, exitCodeForStatus(status));
  }
}

export class RouterUnreachableError extends CliError {}

export interface ApiClientOptions {
  url: string;
  apiKey?: string | undefined;
}

export class ApiClient {
  readonly base: string;

  constructor(private readonly options: ApiClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return (await this.send('GET', path, undefined, signal).then(json)) as T;
  }

  async post<T>(path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    return (await this.send('POST', path, body, signal).then(json)) as T;
  }

  /** A streaming answer (logs, events): the response, whose body the caller reads. */
  async stream(path: string, signal?: AbortSignal): Promise<Response> {
    return this.send('GET', path, undefined, signal);
  }

  private async send(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json, text/plain, text/event-stream' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new RouterUnreachableError(
        `cannot reach the router at ${this.base} (${cause?.code ?? cause?.message ?? (error as Error).message}); is it running? (--url or MODELDOCK_URL)`,
        EXIT.unreachable,
      );
    }
    if (response.ok) return response;
    const text = await response.text();
    let code = 'error';
    let message = text.trim() || response.statusText;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (parsed.error?.message) message = parsed.error.message;
      if (parsed.error?.code) code = parsed.error.code;
    } catch {
      // not JSON: the text itself is the message
    }
    throw new ApiError(response.status, code, `${response.status} ${code}: ${message}`);
  }
}

async function json(response: Response): Promise<unknown> {
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}
