/**
 * The guard's configuration (guard-main.ts), read from its environment. Apart from the
 * worker's (worker-config.ts), whose defaults need ONNX Runtime, which the guard's images
 * do not carry.
 */
import {
  GUARD_FETCH_AS_ENV,
  GUARD_FETCH_MAX_BYTES_ENV,
  GUARD_FETCH_MODEL_ENV,
  GUARD_STORE_DIR_ENV,
  GUARD_STORE_URL_ENV,
} from '../guard-repository-protocol.js';
import { DEFAULT_WORKER_BODY_LIMIT, WORKER_BODY_LIMIT_ENV } from '../worker-limits.js';
import { WORKER_SECRET_ENV } from '../worker-secret.js';

export interface GuardConfig {
  /** Where the guard listens: the worker's address, the one the router calls. */
  host: string;
  port: number;
  /** The port the server listens on, on loopback (MODELDOCK_WORKER_PORT, its `{port}`). */
  serverPort: number;
  /** Empty: open (a guard started by hand); runtimes always set one. */
  secret: string;
  bodyLimitBytes: number;
  name: string;
  /** Where the server runs; empty: the guard's own working directory. */
  serverCwd: string;
  /**
   * A server already started beside the guard, as its child (MODELDOCK_GUARD_SERVER_PID:
   * the process runtime's shell forks it, then becomes the guard); absent: the guard
   * starts the server itself.
   */
  serverPid?: number;
  /** The server's model repository (MODELDOCK_MODELS_DIR, its `{modelsDir}`). */
  repository: string;
  /** The model store, for a pooled server's links (guard-repository.ts); empty: none. */
  store: string;
  /**
   * The router's store, where none is mounted (model-dir-fetch.ts): a pooled server's
   * models are fetched from it, and `model`, when set, before the server starts, into
   * `<repository>/<as>`.
   */
  fetch?: { url: string; maxBytes: number; model?: { id: string; as: string } };
}

export function loadGuardConfig(env: Record<string, string | undefined> = process.env): GuardConfig {
  const integer = (name: string, fallback?: number) => {
    const raw = env[name];
    if ((raw === undefined || raw === '') && fallback !== undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
    return value;
  };
  const port = integer('MODELDOCK_GUARD_PORT');
  const serverPort = integer('MODELDOCK_WORKER_PORT');
  if (port === serverPort) throw new Error('MODELDOCK_GUARD_PORT must differ from MODELDOCK_WORKER_PORT');
  return {
    host: env.MODELDOCK_GUARD_HOST || '0.0.0.0',
    port,
    serverPort,
    secret: env[WORKER_SECRET_ENV] ?? '',
    bodyLimitBytes: integer(WORKER_BODY_LIMIT_ENV, DEFAULT_WORKER_BODY_LIMIT),
    name: env.MODELDOCK_WORKER_NAME || 'guard',
    serverCwd: env.MODELDOCK_GUARD_SERVER_CWD ?? '',
    ...(env.MODELDOCK_GUARD_SERVER_PID ? { serverPid: integer('MODELDOCK_GUARD_SERVER_PID') } : {}),
    repository: env.MODELDOCK_MODELS_DIR ?? '',
    store: env[GUARD_STORE_DIR_ENV] ?? '',
    ...(env[GUARD_STORE_URL_ENV] ? { fetch: fetchConfig(env, integer) } : {}),
  };
}

function fetchConfig(
  env: Record<string, string | undefined>,
  integer: (name: string) => number,
): NonNullable<GuardConfig['fetch']> {
  const id = env[GUARD_FETCH_MODEL_ENV];
  const as = env[GUARD_FETCH_AS_ENV];
  if (id && !as)
    throw new Error(`${GUARD_FETCH_MODEL_ENV} needs ${GUARD_FETCH_AS_ENV}, the name to serve it under`);
  return {
    url: env[GUARD_STORE_URL_ENV]!,
    maxBytes: integer(GUARD_FETCH_MAX_BYTES_ENV),
    ...(id && as ? { model: { id, as } } : {}),
  };
}
