/**
 * Entry point of the guard (guard.ts): `node guard.mjs -- <server command> [args…]`.
 * It starts the foreign server as its child (or adopts the one started beside it,
 * MODELDOCK_GUARD_SERVER_PID: adopted-server.ts), listens where the router calls
 * (MODELDOCK_GUARD_HOST:MODELDOCK_GUARD_PORT) and forwards to the server at
 * 127.0.0.1:MODELDOCK_WORKER_PORT, the port the server was told to listen on. It lives
 * as long as the server: the server's exit is the guard's (with its code), and a
 * SIGTERM to the guard is passed on to the server, so that runtimes that signal only
 * the container's first process (Docker) stop the server too. The server runs in
 * MODELDOCK_GUARD_SERVER_CWD when set (the process runtime's private directory).
 * Where no store is mounted (the router's store on Kubernetes), the guard first fetches
 * the job's model directory from the router into the server's repository
 * (model-dir-fetch.ts); it answers 503 meanwhile, as while the server starts.
 *
 * Its log is JSON lines in pino's shape (level numbers, time, msg), as the worker's,
 * written directly: the guard loads nothing it can do without (guard.ts says why).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { AdoptedServer, type ServerExit } from './adopted-server.js';
import { loadGuardConfig } from './guard-config.js';

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type Level = keyof typeof LEVELS;
const threshold = LEVELS[(process.env.MODELDOCK_LOG_LEVEL || 'info') as Level] ?? LEVELS.info;
let worker = 'guard';
/** The server behind the guard: stopped with it, and its exit is the guard's. */
interface GuardedServer {
  kill(signal: NodeJS.Signals): void;
}
/** The server, once started: a guard that cannot guard it takes it down with it. */
let server: GuardedServer | undefined;

function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (LEVELS[level] < threshold) return;
  const line = { level: LEVELS[level], time: Date.now(), service: 'modeldock-guard', worker, ...fields, msg };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function main(): void {
  const config = loadGuardConfig();
  worker = config.name;
  const separator = process.argv.indexOf('--');
  const [command, ...args] = separator === -1 ? [] : process.argv.slice(separator + 1);
  if (!command) throw new Error('usage: guard -- <server command> [args…]');
  if (!config.secret)
    log('warn', 'no MODELDOCK_WORKER_SECRET: anyone who reaches this port can drive the server');

  const onExit = ({ code, signal }: ServerExit) => {
    log('info', 'server exited; guard exiting', { code, signal });
    // Docker's convention for a death by signal: 128 + its number.
    process.exit(code ?? 128 + (signal ? os.constants.signals[signal] : 0));
  };
  let stopping: NodeJS.Signals | undefined;
  const launch = () => {
    if (stopping) process.exit(0);
    server = config.serverPid
      ? new AdoptedServer(config.serverPid, onExit)
      : startServer(command, args, config.serverCwd, onExit);
  };
  const secret = config.secret;
  const fetched = config.fetch;
  const fetchSource = fetched ? { url: fetched.url, secret, maxBytes: fetched.maxBytes } : undefined;
  if (fetched?.model) {
    const { id, as } = fetched.model;
    const started = Date.now();
    void import('./model-dir-fetch.js')
      .then(({ fetchModelDir }) => fetchModelDir(fetchSource!, id, path.join(config.repository, as)))
      .then(({ files, bytes }) => {
        log('info', 'model fetched from the router', { model: id, files, bytes, ms: Date.now() - started });
        launch();
      })
      .catch((error: unknown) => fail(`fetching model ${id} from the router failed: ${errorText(error)}`));
  } else {
    launch();
  }
  // Set once the guard's HTTP side is loaded; a signal before that stops the server alone.
  let listener: { close(): void } | undefined = undefined;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      log('info', 'guard stopping the server', { signal });
      stopping = signal;
      if (!server) process.exit(0);
      server.kill(signal);
      listener?.close();
    });
  }
  // The HTTP side is loaded while the server starts, not before it.
  void import('./guard.js')
    .then(({ createGuard }) => {
      const guard = createGuard({
        upstreamPort: config.serverPort,
        secret: config.secret,
        bodyLimitBytes: config.bodyLimitBytes,
        name: config.name,
        links: {
          repository: config.repository,
          store: config.store,
          ...(fetchSource ? { fetch: fetchSource } : {}),
        },
        onError: (message, error) =>
          log('error', message, { err: error instanceof Error ? error.stack : String(error) }),
      });
      listener = guard;
      guard.once('error', fail);
      guard.listen(config.port, config.host, () =>
        log('info', 'guard listening', {
          port: config.port,
          server: command,
          serverPort: config.serverPort,
        }),
      );
    })
    .catch(fail);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function fail(error: unknown): never {
  log('fatal', `guard cannot start: ${errorText(error)}`);
  server?.kill('SIGKILL');
  process.exit(1);
}

/** The server started by the guard, as its child (Docker's entry point; a guard run by hand). */
function startServer(
  command: string,
  args: string[],
  cwd: string,
  onExit: (exit: ServerExit) => void,
): GuardedServer {
  // The server gets the worker's environment without the guard's own settings.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('MODELDOCK_GUARD_')),
  );
  const child = spawn(command, args, { stdio: 'inherit', env, cwd: cwd || process.cwd() });
  child.once('error', (error) => {
    log('fatal', `server ${command} cannot start: ${error.message}`);
    process.exit(127);
  });
  child.once('exit', (code, signal) => onExit({ code, signal }));
  return {
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

try {
  main();
} catch (error) {
  fail(error);
}
