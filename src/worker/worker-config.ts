/** The worker's own configuration, read from its environment (it is a separate program). */
import os from 'node:os';
import { WORKER_SECRET_ENV } from '../worker-secret.js';
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
    threads: int('MODELDOCK_WORKER_THREADS', Math.min(4, os.availableParallelism())),
    bodyLimitBytes: int(WORKER_BODY_LIMIT_ENV, DEFAULT_WORKER_BODY_LIMIT),
    maxElements: int('MODELDOCK_WORKER_MAX_ELEMENTS', DEFAULT_MAX_ELEMENTS),
    secret: env[WORKER_SECRET_ENV] ?? '',
    name: env.MODELDOCK_WORKER_NAME || os.hostname(),
  };
}

/** The log level alone, readable even when the rest of the configuration is invalid. */
export function workerLogLevel(env: Record<string, string | undefined> = process.env): string {
  return env.MODELDOCK_LOG_LEVEL || 'info';
}
