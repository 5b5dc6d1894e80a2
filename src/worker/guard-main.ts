/**
 * Entry point of the guard (guard.ts): `node guard.mjs -- <server command> [args…]`.
 * It starts the foreign server as its child, listens where the router calls
 * (MODELDOCK_GUARD_HOST:MODELDOCK_GUARD_PORT) and forwards to the server at
 * 127.0.0.1:MODELDOCK_WORKER_PORT, the port the server was told to listen on. It lives
 * as long as the server: the server's exit is the guard's (with its code), and a
 * SIGTERM to the guard is passed on to the server, so that runtimes that signal only
 * the container's first process (Docker) stop the server too. The server runs in
 * MODELDOCK_GUARD_SERVER_CWD when set (the process runtime's private directory).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { loadGuardConfig } from './guard-config.js';

const logger = pino({
  level: process.env.MODELDOCK_LOG_LEVEL || 'info',
  base: { service: 'modeldock-guard' },
});

async function main(): Promise<void> {
  const config = loadGuardConfig();
  const separator = process.argv.indexOf('--');
  const [command, ...args] = separator === -1 ? [] : process.argv.slice(separator + 1);
  if (!command) throw new Error('usage: guard -- <server command> [args…]');
  const log = logger.child({ worker: config.name });
  if (!config.secret)
    log.warn('no MODELDOCK_WORKER_SECRET: anyone who reaches this port can drive the server');

  // The server gets the worker's environment without the guard's own settings.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('MODELDOCK_GUARD_')),
  );
  const server = spawn(command, args, { stdio: 'inherit', env, cwd: config.serverCwd || process.cwd() });
  // Set once the HTTP stack is loaded; a signal before that stops the server alone.
  let app: FastifyInstance | undefined = undefined;
  server.once('error', (error) => {
    log.fatal(`server ${command} cannot start: ${error.message}`);
    process.exit(127);
  });
  server.once('exit', (code, signal) => {
    log.info({ code, signal }, 'server exited; guard exiting');
    // Docker's convention for a death by signal: 128 + its number.
    process.exit(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      log.info({ signal }, 'guard stopping the server');
      if (server.exitCode === null && server.signalCode === null) server.kill(signal);
      void app?.close();
    });
  }
  // The HTTP stack (fastify, undici) is loaded while the server starts, not before: about
  // half a second of every DEPLOY_CREATE on a foreign server (bench/serving-runtimes).
  const { buildGuardApp } = await import('./guard.js');
  app = buildGuardApp({
    upstream: `http://127.0.0.1:${config.serverPort}`,
    secret: config.secret,
    bodyLimitBytes: config.bodyLimitBytes,
    logger: log,
    name: config.name,
  });
  await app.listen({ port: config.port, host: config.host });
  log.info({ port: config.port, server: command, serverPort: config.serverPort }, 'guard listening');
}

main().catch((error: unknown) => {
  logger.fatal(`guard cannot start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
