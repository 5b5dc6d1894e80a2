/**
 * Starts a real router for a test: real Docker engine, real SQLite (or MongoDB) store,
 * listening on a free loopback port, under an instance name of its own so tests never
 * see (or clean up) each other's containers.
 */
import Dockerode from 'dockerode';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import { Router } from '../../src/router.js';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';
import { LABELS, type Runtime } from '../../src/runtime/runtime.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import type { ServerRecord } from '../../src/store/records.js';

import { DATASETS_DIR, MODELS_DIR, REPO_ROOT, WORKER_IMAGE } from './paths.js';

export { DATASETS_DIR, MODELS_DIR, REPO_ROOT };

export interface TestRouter {
  router: Router;
  url: string;
  config: Config;
  instance: string;
  docker: Dockerode;
  runtime: Runtime;
  store: Store;
  /** Where its SQLite file is: start another router on it to simulate a restart. */
  dataDir: string;
  /** Stop the router (workers keep running, as in production). */
  stop(): Promise<void>;
  /** Stop the router and remove every container of this instance. */
  cleanup(): Promise<void>;
}

/** A router's log, kept as parsed JSON lines, for tests that check what it says. */
export class LogCapture {
  readonly lines: Array<Record<string, unknown> & { level: number; msg: string }> = [];

  write(chunk: string): void {
    for (const line of chunk.split('\n')) if (line.trim()) this.lines.push(JSON.parse(line));
  }

  /** Lines at warn (40) or above whose message matches. */
  warnings(msg: RegExp): LogCapture['lines'] {
    return this.lines.filter((line) => line.level >= 40 && msg.test(line.msg));
  }
}

export function uniqueInstance(prefix = 't'): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 30);
}

export async function startTestRouter(
  options: {
    instance?: string;
    env?: Record<string, string>;
    store?: (dir: string) => Store;
    runtime?: (config: Config) => Runtime;
    dataDir?: string;
    /** API keys to require (MODELDOCK_API_KEY / MODELDOCK_INFER_KEY); without them no key is asked. */
    keys?: { admin?: string; infer?: string };
    /** Where the router's log lines go (JSON lines, at MODELDOCK_LOG_LEVEL); stdout when absent. */
    log?: LogCapture;
  } = {},
): Promise<TestRouter> {
  const instance = options.instance ?? uniqueInstance();
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'modeldock-test-')));
  const config = loadConfig(
    {
      MODELDOCK_PORT: '0',
      // No gRPC service unless a test asks for one (a fixed default port would collide).
      MODELDOCK_GRPC_PORT: '0',
      MODELDOCK_HOST: '127.0.0.1',
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_MODELS_DIR: MODELS_DIR,
      MODELDOCK_DATASETS_DIR: DATASETS_DIR,
      MODELDOCK_WORKER_IMAGE: WORKER_IMAGE,
      MODELDOCK_WORKER_MEMORY: '1g',
      MODELDOCK_RECONCILE_INTERVAL_MS: '2000',
      MODELDOCK_LOG_LEVEL: process.env.MODELDOCK_TEST_LOG_LEVEL ?? 'warn',
      ...(options.keys?.admin ? { MODELDOCK_API_KEY: options.keys.admin } : {}),
      ...(options.keys?.infer ? { MODELDOCK_INFER_KEY: options.keys.infer } : {}),
      ...options.env,
    },
    REPO_ROOT,
  );
  const docker = new Dockerode();
  const store = options.store ? options.store(dataDir) : new SqliteStore(path.join(dataDir, 'modeldock.db'));
  const runtime =
    options.runtime?.(config) ??
    new DockerRuntime({
      docker,
      instance,
      image: config.workerImage,
      modelsDir: config.modelsDir,
      datasetsDir: config.datasetsDir,
    });
  const logger = options.log
    ? pino({ level: config.logLevel }, options.log)
    : pino({ level: config.logLevel });
  const router = await Router.create({ config, store, runtime, logger });
  const url = await router.listen();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await router.close();
  };
  return {
    router,
    url,
    config,
    instance,
    docker,
    runtime,
    store,
    dataDir,
    stop,
    cleanup: async () => {
      await stop();
      await removeInstanceContainers(docker, instance);
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function removeInstanceContainers(docker: Dockerode, instance: string): Promise<void> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.instance}=${instance}`] },
  });
  await Promise.all(
    containers.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined),
    ),
  );
}

export async function instanceContainers(docker: Dockerode, instance: string) {
  return docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${instance}`] } });
}

/** `Authorization` header for a key, to pass as `headers` below. */
export function bearer(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

/** POST JSON and return status and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

export async function getJson(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const response = await fetch(url, { headers: { accept: 'application/json', ...headers } });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/**
 * Resolve with the server record once `predicate` holds, watching the router's event bus
 * (no polling, no sleeps); reject after `timeoutMs`.
 */
export async function waitForServer(
  router: Router,
  serverId: string,
  predicate: (server: ServerRecord) => boolean,
  timeoutMs = 10_000,
): Promise<ServerRecord> {
  return new Promise<ServerRecord>((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | null, server?: ServerRecord) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unsubscribe();
      if (error) reject(error);
      else resolve(server!);
    };
    const timer = setTimeout(
      () => finish(new Error(`server ${serverId} did not reach the expected state within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const unsubscribe = router.events.subscribe((event) => {
      if (event.type === 'server' && event.server.serverId === serverId && predicate(event.server)) {
        finish(null, event.server);
      }
    });
    router.store.getServer(serverId).then(
      (server) => {
        if (server && predicate(server)) finish(null, server);
      },
      (error: Error) => finish(error),
    );
  });
}
