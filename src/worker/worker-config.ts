/** The worker's own configuration, read from its environment (it is a separate program). */
import os from 'node:os';
import { WORKER_THREADS_ENV } from '../worker-limits.js';
import { WORKER_SECRET_ENV } from '../worker-secret.js';
import { STORE_CACHE_DIR_ENV, STORE_URL_ENV } from '../worker-store-protocol.js';
import { DEFAULT_WORKER_BODY_LIMIT, WORKER_BODY_LIMIT_ENV } from '../worker-limits.js';
import { DEFAULT_MAX_ELEMENTS } from './tensors.js';

export interface WorkerConfig {
  port: number;
  host: string;
  modelsDir: string;
  datasetsDir: string;
  logLevel: string;
  /** ONNX Runtime intra-op threads per session. */
  threads: number;
  bodyLimitBytes: number;
  maxElements: number;
  /** Empty: the worker is open (started by hand); runtimes always set one. */
  secret: string;
  name: string;
  /** The router's URL to fetch the store from (MODELDOCK_STORE_URL); empty: the directories above. */
  storeUrl: string;
  /** Where fetched store files are cached (the Pod's emptyDir). */
  storeCacheDir: string;
}

export function loadWorkerConfig(env: Record<string, string | undefined> = process.env): WorkerConfig {
  const int = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer`);
    return value;
  };
  return {
    port: int('MODELDOCK_WORKER_PORT', 8000),
    host: env.MODELDOCK_WORKER_HOST || '0.0.0.0',
    modelsDir: env.MODELDOCK_MODELS_DIR || '/models',
    datasetsDir: env.MODELDOCK_DATASETS_DIR || '/datasets',
    logLevel: workerLogLevel(env),
    threads: int(WORKER_THREADS_ENV, Math.min(4, os.availableParallelism())),
    bodyLimitBytes: int(WORKER_BODY_LIMIT_ENV, DEFAULT_WORKER_BODY_LIMIT),
    maxElements: int('MODELDOCK_WORKER_MAX_ELEMENTS', DEFAULT_MAX_ELEMENTS),
    secret: env[WORKER_SECRET_ENV] ?? '',
    name: env.MODELDOCK_WORKER_NAME || os.hostname(),
    storeUrl: storeUrl(env[STORE_URL_ENV]),
    storeCacheDir: env[STORE_CACHE_DIR_ENV] || '/cache',
  };
}

/** The log level alone, readable even when the rest of the configuration is invalid. */
export function workerLogLevel(env: Record<string, string | undefined> = process.env): string {
  return env.MODELDOCK_LOG_LEVEL || 'info';
}

function storeUrl(raw: string | undefined): string {
  if (!raw) return '';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${STORE_URL_ENV} must be an http(s) URL, got "${raw.slice(0, 100)}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`${STORE_URL_ENV} must be an http(s) URL, got "${raw.slice(0, 100)}"`);
  return raw;
}
