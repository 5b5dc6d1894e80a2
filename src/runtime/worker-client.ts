/**
 * HTTP client for the inference worker's API (Open Inference Protocol plus the
 * repository extension), shared by every runtime. One keep-alive connection pool per
 * worker endpoint; pools are dropped when a worker goes away.
 */
import { Pool, type Dispatcher } from 'undici';
import { GUARD_REPOSITORY_PATH } from '../guard-repository-protocol.js';
import { WORKER_SECRET_HEADER } from '../worker-secret.js';
import {
  InvalidInputError,
  NotFoundError,
  TimeoutError,
  TooManyRequestsError,
  WorkerError,
  errorMessage,
  isModeldockError,
} from '../errors.js';

/** How long a worker may take to start its answer, and between two parts of it (a big batch is slow). */
export const WORKER_ANSWER_TIMEOUT_MS = 300_000;

export interface LoadResult {
  loadMs: number | null;
  /**
   * What the load measured on modeldock's worker (the worker's growth over it), the
   * worker's measured memory after it and its limit; null from a server that does not say
   * (a foreign serving runtime).
   */
  memoryBytes: number | null;
  workerMemoryBytes: number | null;
  workerMemoryLimitBytes: number | null;
}

export interface BatchResult {
  model_name: string;
  dataset: string;
  count: number;
  predictions: unknown[];
  accuracy: number | null;
  duration_ms: number;
}

export interface RepositoryEntry {
  name: string;
  state: string;
  reason?: string;
  /** A ready model's store model (modeldock's worker). */
  model_id?: string;
  /** The dataset a ready model was loaded for, when the router said (shared workers). */
  dataset?: string;
  /** A ready model's measured memory: what the worker grew by over its load. */
  memory_bytes?: number;
}

export interface WorkerStats {
  rss_bytes: number;
  /** The worker's measured memory: its cgroup's working set (`memory_source: cgroup`) or its rss. */
  memory_bytes?: number;
  /** Its cgroup's memory limit; null without one (or measured by rss). */
  memory_limit_bytes?: number | null;
  memory_source?: 'cgroup' | 'rss';
  /** Each loaded model's measured memory, by the name it is served under. */
  model_memory_bytes?: Record<string, number>;
  heap_used_bytes?: number;
  /** CPU time since the worker started, user + system. */
  cpu_seconds?: number;
  /** The models it holds (modeldock's worker; the guard in front of a foreign server cannot say). */
  loaded?: string[];
}

export interface WorkerClientOptions {
  /** The secret of the worker at an endpoint (Runtime.workerSecret); sent with every call. */
  secretOf?: (endpoint: string) => string | undefined;
}

/** Request headers with the worker's secret added (undici takes objects or flat arrays). */
function withSecret(headers: Dispatcher.DispatchOptions['headers'], secret: string) {
  if (headers === undefined || headers === null) return { [WORKER_SECRET_HEADER]: secret };
  if (Array.isArray(headers)) return [...(headers as string[]), WORKER_SECRET_HEADER, secret];
  return { ...(headers as Record<string, string>), [WORKER_SECRET_HEADER]: secret };
}

export class WorkerClient {
  private readonly pools = new Map<string, Dispatcher>();

  constructor(private readonly options: WorkerClientOptions = {}) {}

  /**
   * The connection pool for a worker, for streaming proxies that need the raw dispatcher.
   * Every request through it carries the worker's secret, looked up per request (a port
   * may be reused by another worker).
   */
  pool(endpoint: string): Dispatcher {
    let pool = this.pools.get(endpoint);
    if (!pool) {
      const base = new Pool(endpoint, {
        connections: 64,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        connectTimeout: 2_000,
      });
      const secretOf = this.options.secretOf;
      pool = secretOf
        ? base.compose((dispatch) => (options, handler) => {
            const secret = secretOf(endpoint);
            return dispatch(
              secret === undefined ? options : { ...options, headers: withSecret(options.headers, secret) },
              handler,
            );
          })
        : base;
      this.pools.set(endpoint, pool);
    }
    return pool;
  }

  /** Forget a worker's connections (it stopped or moved). */
  async forget(endpoint: string | null | undefined): Promise<void> {
    if (!endpoint) return;
    const pool = this.pools.get(endpoint);
    this.pools.delete(endpoint);
    await pool?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }

  /**
   * Wait until the worker's readiness endpoint answers 200. Polls with a short, growing
   * interval (the health check is what tells, there is no event for it) and stops early
   * when `isAlive` says the worker is gone, so a crashing worker fails fast.
   */
  async waitUntilReady(
    endpoint: string,
    options: { timeoutMs: number; signal?: AbortSignal; isAlive?: () => Promise<boolean> },
  ): Promise<void> {
    const deadline = Date.now() + options.timeoutMs;
    let interval = 10;
    let lastError = 'no answer yet';
    for (let attempt = 0; ; attempt++) {
      options.signal?.throwIfAborted();
      try {
        const { statusCode, body } = await this.pool(endpoint).request({
          method: 'GET',
          path: '/v2/health/ready',
          headersTimeout: 2_000,
          bodyTimeout: 2_000,
          ...(options.signal ? { signal: options.signal } : {}),
        });
        await body.dump();
        if (statusCode === 200) return;
        lastError = `status ${statusCode}`;
      } catch (error) {
        lastError = errorMessage(error);
      }
      if (options.isAlive && attempt % 5 === 4 && !(await options.isAlive())) {
        throw new WorkerError(`worker at ${endpoint} exited before it became ready (${lastError})`);
      }
      if (Date.now() + interval > deadline) {
        throw new TimeoutError(
          `worker at ${endpoint} not ready after ${options.timeoutMs} ms (${lastError})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, interval));
      // Capped low: a worker boots in ~0.2-0.3 s, and with a longer step the last wait
      // overshoots its readiness by up to the step (a refused connection costs ~nothing).
      interval = Math.min(interval * 2, 50);
    }
  }

  /**
   * Load `name` through the repository extension. Modeldock's worker is told which
   * store model to load under that name (`model_id`); a foreign server finds the model
   * under `name` in its own repository and gets a plain request. A shared worker is also
   * told the job's `dataset`, which its index reports back (what adoption rebuilds a
   * lost record from).
   */
  async load(
    endpoint: string,
    name: string,
    modelId: string | undefined,
    signal?: AbortSignal,
    dataset?: string,
  ): Promise<LoadResult> {
    const result = await this.call<{
      load_ms?: number;
      memory_bytes?: number;
      worker_memory_bytes?: number;
      worker_memory_limit_bytes?: number | null;
    }>(
      endpoint,
      'POST',
      `/v2/repository/models/${encodeURIComponent(name)}/load`,
      modelId === undefined
        ? {}
        : { parameters: { model_id: modelId, ...(dataset === undefined ? {} : { dataset }) } },
      signal,
    );
    const number = (value: unknown) => (typeof value === 'number' ? value : null);
    return {
      loadMs: number(result?.load_ms),
      memoryBytes: number(result?.memory_bytes),
      workerMemoryBytes: number(result?.worker_memory_bytes),
      workerMemoryLimitBytes: number(result?.worker_memory_limit_bytes),
    };
  }

  /** Unload a name; resolves with the worker's measured memory after it (null from a server that does not say). */
  async unload(
    endpoint: string,
    name: string,
    signal?: AbortSignal,
  ): Promise<{ workerMemoryBytes: number | null }> {
    const result = await this.call<{ worker_memory_bytes?: number }>(
      endpoint,
      'POST',
      `/v2/repository/models/${encodeURIComponent(name)}/unload`,
      {},
      signal,
    );
    const bytes = result?.worker_memory_bytes;
    return { workerMemoryBytes: typeof bytes === 'number' ? bytes : null };
  }

  /**
   * Put store model `modelId` into a pooled foreign server's repository under `name`,
   * through the guard in front of it (src/worker/guard-repository.ts): the server was
   * started with an empty repository, and loads the model under `name` afterwards.
   */
  async linkModel(endpoint: string, name: string, modelId: string, signal?: AbortSignal): Promise<void> {
    await this.call(
      endpoint,
      'PUT',
      `${GUARD_REPOSITORY_PATH}/${encodeURIComponent(name)}`,
      { model: modelId },
      signal,
    );
  }

  async index(endpoint: string, signal?: AbortSignal): Promise<RepositoryEntry[]> {
    return (await this.call<RepositoryEntry[]>(endpoint, 'POST', '/v2/repository/index', {}, signal)) ?? [];
  }

  async isLoaded(endpoint: string, name: string, signal?: AbortSignal): Promise<boolean> {
    const entries = await this.index(endpoint, signal);
    return entries.some((e) => e.name === name && e.state === 'READY');
  }

  async batch(endpoint: string, name: string, dataset: string, signal?: AbortSignal): Promise<BatchResult> {
    return this.call<BatchResult>(
      endpoint,
      'POST',
      `/v2/models/${encodeURIComponent(name)}/batch`,
      { dataset },
      signal,
    );
  }

  async infer(endpoint: string, name: string, request: unknown, signal?: AbortSignal): Promise<unknown> {
    return this.call(endpoint, 'POST', `/v2/models/${encodeURIComponent(name)}/infer`, request, signal);
  }

  /** A model resource on the worker as JSON (`GET /v2/models/<name>[/config|/stats]`). */
  async modelJson<T>(endpoint: string, path: string, signal?: AbortSignal): Promise<T> {
    return this.call<T>(endpoint, 'GET', path, undefined, signal);
  }

  async stats(endpoint: string, signal?: AbortSignal): Promise<WorkerStats> {
    return this.call<WorkerStats>(endpoint, 'GET', '/v2/worker/stats', undefined, signal);
  }

  private async call<T>(
    endpoint: string,
    method: Dispatcher.HttpMethod,
    path: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<T> {
    let payload: string | Buffer | undefined;
    try {
      // Bytes go as they are: a body the router did not parse (POST /v1/jobs/{job}/infer).
      payload = body === undefined || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    } catch (error) {
      // Nesting too deep for the serializer (or a cycle): the caller's input, not the worker.
      throw new InvalidInputError(`the request cannot be sent to the worker: ${errorMessage(error)}`);
    }
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool(endpoint).request({
        method,
        path,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
        ...(payload === undefined ? {} : { body: payload }),
        headersTimeout: WORKER_ANSWER_TIMEOUT_MS,
        bodyTimeout: WORKER_ANSWER_TIMEOUT_MS,
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (isModeldockError(error)) throw error;
      throw new WorkerError(`worker at ${endpoint} unreachable: ${errorMessage(error)}`, { cause: error });
    }
    const text = await response.body.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.statusCode >= 200 && response.statusCode < 300) return parsed as T;
    const message =
      (parsed as { error?: unknown } | undefined)?.error !== undefined
        ? String((parsed as { error: unknown }).error)
        : `worker answered ${response.statusCode}`;
    if (response.statusCode === 400 || response.statusCode === 422) throw new InvalidInputError(message);
    if (response.statusCode === 404) throw new NotFoundError(message);
    // Busy with the bodies in flight (its request budget): nothing wrong with the worker.
    if (response.statusCode === 503 && response.headers['retry-after'] !== undefined) {
      throw new TooManyRequestsError(message, {
        retryAfterSeconds: Number(response.headers['retry-after']) || 1,
      });
    }
    if (response.statusCode === 401) {
      throw new WorkerError(`worker at ${endpoint} refused the router's secret: ${message}`, { status: 401 });
    }
    throw new WorkerError(message, { status: response.statusCode });
  }
}
