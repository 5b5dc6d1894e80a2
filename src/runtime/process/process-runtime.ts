/**
 * Runtime backend without Docker: each worker is a local process of the same worker
 * code, on its own loopback port. Workers are started detached (a process group of their
 * own) so they outlive a router restart; what the runtime knows about them lives in one
 * state file per worker (<stateDir>/<instance>/<name>.json: labels, limits, port, pid and
 * the pid's start time), from which the next router adopts them. A recorded pid is ours
 * only while /proc shows the recorded start time, so a reused pid is never signalled.
 *
 * Exits are noticed at once for our own children (their 'exit' event) and by a short
 * /proc poll for workers adopted from an earlier router (they are not our children).
 * One router per instance is assumed: state files are serialized per worker within one
 * runtime object, not across processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter, on } from 'node:events';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import {
  chmod,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ConflictError, InvalidInputError, RuntimeUnavailableError, errorMessage } from '../../errors.js';
import { KeyedMutex } from '../../keyed-mutex.js';
import {
  LABELS,
  type Runtime,
  type RuntimeEvent,
  type RuntimeEventType,
  type WorkerInfo,
  type WorkerLimits,
  type WorkerSpec,
  type LogOptions,
  type ServerCommand,
  type WorkerStats,
} from '../runtime.js';
import {
  cgroupMembers,
  commandInCgroups,
  discard,
  prepareCgroups,
  release,
  verifyPlacement,
  wasOomKilled,
  type EnforcedLimit,
  type PreparedCgroups,
} from './cgroup.js';
import { freeLoopbackPort, freeLoopbackPorts } from '../loopback-port.js';
import { fillServerCommand } from '../server-command.js';
import { processTreeUsage } from '../../process-usage.js';
import { groupMembersWith, isSameProcess, processStartTime } from './proc.js';
import { WORKER_BODY_LIMIT_ENV, workerBodyLimit } from '../../worker-limits.js';
import { WORKER_SECRET_ENV, withWorkerSecret } from '../../worker-secret.js';
import { GUARD_STORE_DIR_ENV } from '../../guard-repository-protocol.js';

export interface WorkerCommand {
  command: string;
  args: string[];
  cwd?: string;
}

export interface ProcessRuntimeOptions {
  instance: string;
  stateDir: string;
  modelsDir: string;
  datasetsDir: string;
  /** How to run a worker; default: compiled dist/worker/main.js, else the source via tsx. */
  workerCommand?: WorkerCommand;
  logger?: Pick<Logger, 'info' | 'warn'> & { level?: string };
  /** How often workers adopted from an earlier router are checked for liveness. */
  adoptedPollMs?: number;
}

/** The state file of one worker. */
export interface WorkerState {
  name: string;
  labels: Record<string, string>;
  limits: WorkerLimits;
  env: Record<string, string>;
  /** A foreign server to run instead of modeldock's worker (WorkerSpec.server). */
  server?: ServerCommand;
  /** A pooled foreign server (WorkerSpec.emptyRepository): its guard links models in. */
  emptyRepository?: boolean;
  /**
   * The foreign server's private directory when it is not the one its name gives: a worker
   * renamed while running (the warm pool's hand-over) keeps the one it was started in.
   */
  workDir?: string;
  status: 'created' | 'running' | 'exited';
  port: number | null;
  pid: number | null;
  /** Field 22 of /proc/<pid>/stat when it was started: the pid is ours only while it matches. */
  startTime: string | null;
  exitCode: number | null;
  error: string | null;
  oomKilled?: boolean;
  /** Limits the kernel enforces for the running process (see cgroup.ts). */
  enforcedLimits: string[];
  cgroups?: string[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface OwnChild {
  /** The worker's name now (a rename changes it while the child runs). */
  name: string;
  pid: number;
  child: ChildProcess;
  exited: Promise<Exit>;
}

const NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,127}$/;
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DIED_UNSEEN = 'exited while the router was not watching (adopted worker)';

/** The compiled worker when running compiled code, else the TypeScript source through tsx. */
export function defaultWorkerCommand(): WorkerCommand {
  const compiled = path.join(REPO_ROOT, 'dist/worker/main.js');
  if (!import.meta.url.endsWith('.ts') && existsSync(compiled)) {
    return { command: process.execPath, args: [compiled], cwd: REPO_ROOT };
  }
  return {
    command: process.execPath,
    args: ['--import', 'tsx', path.join(REPO_ROOT, 'src/worker/main.ts')],
    cwd: REPO_ROOT,
  };
}

/**
 * The guard (src/worker/guard-main.ts) run the way the worker is: its entry point sits
 * beside the worker's, compiled or as source.
 */
export function guardCommand(worker: WorkerCommand): WorkerCommand {
  const args = worker.args.map((arg) => arg.replace(/(worker[\\/])main\.(m?[jt]s)$/, '$1guard-main.$2'));
  if (args.every((arg, i) => arg === worker.args[i])) {
    throw new InvalidInputError(
      `cannot tell the guard's entry point from the worker command ${worker.args.join(' ')} (expected …/worker/main.js or .ts)`,
    );
  }
  return { ...worker, args };
}

/**
 * A shell that forks the server (in its own directory, without the guard's settings),
 * then becomes the guard: `exec` keeps its pid, so the server is the guard's child, which
 * the guard adopts (MODELDOCK_GUARD_SERVER_PID, src/worker/adopted-server.ts). The
 * server's start does not wait for Node.js to boot the guard (a tenth of a second of
 * CPU, much more on a busy machine), and both share the worker's process group and
 * cgroups. Its words: the server's directory, the count of the guard's words, the
 * guard's words, then the server's.
 */
const SERVER_BESIDE_GUARD = [
  'dir=$1; n=$2; shift 2',
  // The server's environment is the worker's without the guard's own settings.
  'guard_settings=$(env | sed -n "s/^\\(MODELDOCK_GUARD_[A-Za-z0-9_]*\\)=.*/\\1/p")',
  '(cd "$dir" && for v in $guard_settings; do unset "$v"; done && shift "$n" && exec "$@") &',
  'MODELDOCK_GUARD_SERVER_PID=$!; export MODELDOCK_GUARD_SERVER_PID',
  'i=0',
  'for word in "$@"; do',
  '  if [ "$i" -eq 0 ]; then set --; fi',
  '  if [ "$i" -lt "$n" ]; then set -- "$@" "$word"; fi',
  '  i=$((i + 1))',
  'done',
  'exec "$@"',
].join('\n');

export function besideGuard(
  guard: WorkerCommand,
  server: string[],
  serverDir: string,
): { command: string; args: string[] } {
  // The guard's own command line names the server too, as where the guard starts it
  // (`node guard-main.js -- <server command>`): what `ps` shows, what its log says.
  const guardWords = [guard.command, ...guard.args, '--', ...server];
  return {
    command: '/bin/sh',
    args: [
      '-c',
      SERVER_BESIDE_GUARD,
      'modeldock-guard',
      serverDir,
      String(guardWords.length),
      ...guardWords,
      ...server,
    ],
  };
}

/** Docker's convention: a process killed by signal N exited with 128 + N. */
function exitCodeOf(exit: Exit): number | null {
  if (exit.code !== null) return exit.code;
  const number = exit.signal ? os.constants.signals[exit.signal] : undefined;
  return number === undefined ? null : 128 + number;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A worker's log is kept across its restarts; past this size it moves to `<log>.1`. */
const LOG_ROTATE_BYTES = 16 * 1024 * 1024;
/** logs() reads at most this much from the end of the file. */
const LOG_TAIL_BYTES = 4 * 1024 * 1024;

async function rotateLog(file: string): Promise<void> {
  const size = await stat(file).then(
    (s) => s.size,
    () => 0,
  );
  if (size > LOG_ROTATE_BYTES) await rename(file, `${file}.1`);
}

async function readTail(file: string, maxBytes: number): Promise<string> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const text = buffer.toString('utf8');
    // Cut a partial first line when the read started in the middle of the file.
    return length < size ? text.slice(text.indexOf('\n') + 1) : text;
  } finally {
    await handle.close();
  }
}

/**
 * The bytes of a file from `position` to its end as it is now (none when it is missing),
 * and where the next read starts. A file shorter than `position` is a new one (the log
 * was rotated when the worker restarted): it is read from its start.
 */
async function readFrom(file: string, position: number): Promise<{ bytes: Buffer; next: number }> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return { bytes: Buffer.alloc(0), next: position };
  try {
    const { size } = await handle.stat();
    const from = size < position ? 0 : position;
    const buffer = Buffer.alloc(size - from);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
    return { bytes: buffer.subarray(0, bytesRead), next: from + bytesRead };
  } finally {
    await handle.close();
  }
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private readonly dir: string;
  private readonly command: WorkerCommand;
  private readonly children = new Map<string, OwnChild>();
  private readonly emitter = new EventEmitter();
  private readonly locks = new KeyedMutex();
  private readonly watcher: NodeJS.Timeout;
  private checking = false;
  private subscribers = 0;
  /** `<name>:<pid>` of deaths already announced by this runtime object (once each). */
  private readonly announced = new Set<string>();
  /** Workers this runtime saw alive through /proc (adopted ones), by name: their pid. */
  private readonly seenAlive = new Map<string, number>();
  /** Endpoint → secret of the running workers seen last (see Runtime.workerSecret). */
  private readonly secrets = new Map<string, string>();
  /** Ends every events() iteration when the runtime is closed. */
  private readonly closed = new AbortController();

  constructor(private readonly options: ProcessRuntimeOptions) {
    if (!NAME_PATTERN.test(options.instance)) {
      throw new InvalidInputError(`invalid instance name ${options.instance}`);
    }
    this.dir = path.join(options.stateDir, options.instance);
    this.command = options.workerCommand ?? defaultWorkerCommand();
    this.emitter.setMaxListeners(0);
    this.watcher = setInterval(() => void this.checkAdopted(), options.adoptedPollMs ?? 250);
    this.watcher.unref();
    // Learn at once which adopted workers are alive, so a death right after is announced.
    void this.checkAdopted();
  }

  async ping(): Promise<void> {
    // The machine itself is the runtime: it is there when we are.
  }

  async prepare(onProgress?: (line: string) => void): Promise<void> {
    await this.ensureDir();
    const entry = this.command.args.find((a) => /\.(m?js|ts)$/.test(a));
    if (entry && !existsSync(path.resolve(this.command.cwd ?? REPO_ROOT, entry))) {
      throw new RuntimeUnavailableError(`worker entry point ${entry} does not exist`);
    }
    if (this.command.args.includes('tsx')) {
      try {
        createRequire(path.join(this.command.cwd ?? REPO_ROOT, 'package.json')).resolve('tsx');
      } catch (cause) {
        throw new RuntimeUnavailableError('the worker runs from source but tsx is not installed', { cause });
      }
    }
    onProgress?.(
      `process runtime: workers run as \`${[path.basename(this.command.command), ...this.command.args].join(' ')}\`, state in ${this.dir}`,
    );
  }

  async create(spec: WorkerSpec): Promise<WorkerInfo> {
    this.checkName(spec.name);
    return this.locks.run(spec.name, async () => {
      const existing = await this.readState(spec.name);
      if (existing) return this.toInfo(existing);
      await this.ensureDir();
      const state: WorkerState = {
        name: spec.name,
        labels: { ...spec.labels, [LABELS.managed]: 'true', [LABELS.instance]: this.options.instance },
        limits: spec.limits,
        // Never a worker open by accident: a spec without a secret gets one here. The state
        // file that keeps it is private to the router's user (ensureDir).
        env: withWorkerSecret({
          [WORKER_BODY_LIMIT_ENV]: String(workerBodyLimit(spec.limits.memoryBytes)),
          ...spec.env,
        }),
        ...(spec.server ? { server: spec.server } : {}),
        ...(spec.emptyRepository ? { emptyRepository: true } : {}),
        status: 'created',
        port: null,
        pid: null,
        startTime: null,
        exitCode: null,
        error: null,
        oomKilled: false,
        enforcedLimits: [],
        cgroups: [],
        createdAt: new Date().toISOString(),
        startedAt: null,
        finishedAt: null,
      };
      await this.writeState(state);
      this.emit('create', state);
      return this.toInfo(state);
    });
  }

  async start(name: string): Promise<WorkerInfo> {
    return this.locks.run(name, async () => {
      const state = await this.requireState(name);
      if (await this.isAlive(state)) return this.toInfo(state);
      // A worker that died unseen keeps its cgroups until it is started again or removed.
      await release(state.cgroups ?? []);
      const port = await freeLoopbackPort();
      // The groups exist, limits set, before the worker does; it joins them first thing.
      const prepared = await prepareCgroups(`${this.options.instance}-${name}`, state.limits);
      let own: OwnChild;
      try {
        own = await this.spawnWorker(state, port, prepared);
      } catch (error) {
        await discard(prepared);
        throw error;
      }
      // Read before anything else: the start time is what makes this pid ours.
      const startTime = (await processStartTime(own.pid)) ?? null;
      const placement = await verifyPlacement(own.pid, prepared);
      const notEnforced = (['memory', 'pids', 'cpu'] as EnforcedLimit[]).filter(
        (l) => !placement.enforced.includes(l),
      );
      if (notEnforced.length > 0) {
        this.options.logger?.warn(
          { worker: name, notEnforced, why: prepared.problems },
          'process runtime: these worker limits are recorded but not enforced (no writable cgroup)',
        );
      }
      // Started afresh in its own name's directory (a renamed worker's earlier one is gone).
      const { workDir: _earlier, ...restarted } = state;
      const running: WorkerState = {
        ...restarted,
        status: 'running',
        port,
        pid: own.pid,
        startTime,
        exitCode: null,
        error: null,
        oomKilled: false,
        enforcedLimits: placement.enforced,
        cgroups: placement.dirs,
        startedAt: new Date().toISOString(),
        finishedAt: null,
      };
      await this.writeState(running);
      this.emit('start', running);
      // If it already died, its exit handler (queued behind this lock) records it next.
      return this.toInfo(running);
    });
  }

  async stop(name: string, options?: { timeoutSeconds?: number }): Promise<void> {
    await this.locks.run(name, async () => {
      const state = await this.readState(name);
      if (!state || !(await this.isAlive(state))) return;
      await this.terminate(state, (options?.timeoutSeconds ?? 10) * 1000, 'stopped');
      this.emit('stop', state);
    });
  }

  async remove(name: string): Promise<void> {
    await this.locks.run(name, async () => {
      const state = await this.readState(name);
      if (!state) return;
      // Like `docker rm --force`: no grace period.
      if (await this.isAlive(state)) await this.terminate(state, 0, 'removed');
      this.children.delete(name);
      await rm(this.stateFile(name), { force: true });
      await rm(this.logFile(name), { force: true });
      await rm(`${this.logFile(name)}.1`, { force: true });
      await rm(this.serverDir(name), { recursive: true, force: true });
      if (state.workDir) await rm(state.workDir, { recursive: true, force: true });
      await release(state.cgroups ?? []);
      this.seenAlive.delete(name);
      for (const key of this.announced) if (key.startsWith(`${name}:`)) this.announced.delete(key);
      this.emit('destroy', state);
    });
  }

  /**
   * The warm pool's hand-over: the worker's state file and log take the new name while it
   * runs on. A foreign server keeps the directory it was started in (its command line names
   * it) until it is next started or removed.
   */
  async rename(name: string, newName: string): Promise<WorkerInfo> {
    this.checkName(newName);
    return this.locks.run(name, () =>
      this.locks.run(newName, async () => {
        const state = await this.requireState(name);
        if (await this.readState(newName)) throw new ConflictError(`a worker named ${newName} exists`);
        const renamed: WorkerState = {
          ...state,
          name: newName,
          ...(state.server ? { workDir: state.workDir ?? this.serverDir(name) } : {}),
        };
        await this.writeState(renamed);
        for (const suffix of ['', '.1']) {
          await rename(`${this.logFile(name)}${suffix}`, `${this.logFile(newName)}${suffix}`).catch(
            (error: unknown) => {
              if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
            },
          );
        }
        await rm(this.stateFile(name), { force: true });
        const own = this.children.get(name);
        if (own) {
          this.children.delete(name);
          own.name = newName;
          this.children.set(newName, own);
        }
        const seen = this.seenAlive.get(name);
        if (seen !== undefined) {
          this.seenAlive.delete(name);
          this.seenAlive.set(newName, seen);
        }
        return this.toInfo(renamed);
      }),
    );
  }

  async inspect(name: string): Promise<WorkerInfo | undefined> {
    const state = await this.readState(name);
    return state ? this.toInfo(state) : undefined;
  }

  async list(): Promise<WorkerInfo[]> {
    const infos = await Promise.all((await this.stateNames()).map((name) => this.inspect(name)));
    return infos.filter((i): i is WorkerInfo => i !== undefined);
  }

  async *events(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    // While someone listens, the /proc watch keeps the process alive like a socket would.
    if (this.subscribers++ === 0) this.watcher.ref();
    try {
      const until = AbortSignal.any([signal, this.closed.signal]);
      for await (const [event] of on(this.emitter, 'event', { signal: until })) yield event as RuntimeEvent;
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    } finally {
      if (--this.subscribers === 0) this.watcher.unref();
    }
  }

  async logs(name: string, options?: { tail?: number }): Promise<string> {
    await this.requireState(name);
    const text = await readTail(this.logFile(name), LOG_TAIL_BYTES);
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    const tail = options?.tail ?? 200;
    const kept = tail > 0 ? lines.slice(-tail) : [];
    return kept.length > 0 ? kept.join('\n') + '\n' : '';
  }

  async openLogs(name: string, options?: LogOptions): Promise<AsyncIterable<string>> {
    const history = await this.logs(name, { tail: options?.tail ?? 200 });
    if (!options?.follow)
      return (async function* () {
        if (history) yield history;
      })();
    // Follow from the end as it is now: what the worker prints after the history was read.
    const from = await stat(this.logFile(name)).then(
      (s) => s.size,
      () => 0,
    );
    return this.followLog(name, history, from, options.signal);
  }

  /**
   * The history, then what the worker appends to its log file, woken by the file changing
   * (fs.watch) or the worker's own events; ends once it is no longer running and the
   * file is read to its end, when the signal aborts, or when the runtime closes.
   */
  private async *followLog(name: string, history: string, from: number, signal?: AbortSignal) {
    if (history) yield history;
    const until = AbortSignal.any([this.closed.signal, ...(signal ? [signal] : [])]);
    let wake: () => void = () => undefined;
    const onEvent = (event: RuntimeEvent) => {
      if (event.name === name) wake();
    };
    const onAbort = () => wake();
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(this.logFile(name), () => wake());
    } catch {
      // No log file yet (never started): the worker's events still wake us.
    }
    this.emitter.on('event', onEvent);
    until.addEventListener('abort', onAbort);
    const decoder = new TextDecoder();
    let position = from;
    try {
      for (;;) {
        const changed = new Promise<void>((resolve) => (wake = resolve));
        const state = await this.readState(name);
        const running = state !== undefined && (await this.isAlive(state));
        const read = await readFrom(this.logFile(name), position);
        position = read.next;
        const text = decoder.decode(read.bytes, { stream: true });
        if (text) yield text;
        if (until.aborted || !running) return;
        await changed;
      }
    } finally {
      watcher?.close();
      this.emitter.off('event', onEvent);
      until.removeEventListener('abort', onAbort);
    }
  }

  async stats(name: string): Promise<WorkerStats | undefined> {
    const state = await this.readState(name);
    if (!state || state.pid === null || !(await this.isAlive(state))) return undefined;
    // The whole tree: a foreign server runs as a child of its guard.
    const usage = await processTreeUsage(state.pid);
    if (!usage) return undefined;
    return {
      cpuSeconds: usage.cpuSeconds,
      memoryBytes: usage.rssBytes,
      memoryLimitBytes: state.enforcedLimits.includes('memory') ? state.limits.memoryBytes : null,
      time: Date.now(),
    };
  }

  workerSecret(endpoint: string): string | undefined {
    return this.secrets.get(endpoint);
  }

  /** Stops watching. Workers keep running: they outlive the router by design. */
  async close(): Promise<void> {
    clearInterval(this.watcher);
    this.closed.abort();
  }

  /** Kill a worker the way a crash would (fault injection); only a pid proven ours. */
  async kill(name: string): Promise<void> {
    const state = await this.requireState(name);
    if (state.pid === null || !(await this.isAlive(state))) return;
    // Its whole process group, as a crash of the machine's would: a foreign server with its guard.
    try {
      process.kill(-state.pid, 'SIGKILL');
    } catch {
      process.kill(state.pid, 'SIGKILL');
    }
  }

  // ------------------------------------------------------------------ internals

  private checkName(name: string): void {
    if (!NAME_PATTERN.test(name)) throw new InvalidInputError(`invalid worker name ${name}`);
  }

  /**
   * Private to the router's user: a state file names a pid the router will signal, so
   * nobody else may write one.
   */
  private async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
  }

  private stateFile(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  private logFile(name: string): string {
    return path.join(this.dir, `${name}.log`);
  }

  private async stateNames(): Promise<string[]> {
    const entries = await readdir(this.dir).catch(() => [] as string[]);
    return entries.filter((e) => e.endsWith('.json')).map((e) => e.slice(0, -'.json'.length));
  }

  private async readState(name: string): Promise<WorkerState | undefined> {
    if (!NAME_PATTERN.test(name)) return undefined;
    try {
      const state = JSON.parse(await readFile(this.stateFile(name), 'utf8')) as WorkerState;
      // Only files that say they belong to this instance are ours to act on.
      if (state.labels?.[LABELS.managed] !== 'true') return undefined;
      if (state.labels?.[LABELS.instance] !== this.options.instance) return undefined;
      if (state.name !== name) return undefined;
      return state;
    } catch {
      return undefined;
    }
  }

  private async requireState(name: string): Promise<WorkerState> {
    const state = await this.readState(name);
    if (!state) throw new ConflictError(`no modeldock worker named ${name} exists`);
    return state;
  }

  /**
   * Atomic replace (write a temporary file, then rename), so readers never see half a
   * file. The temporary name is unique per write: two writers sharing one (two runtime
   * objects of a process recording the same exit) could rename the other's half-written
   * file into place.
   */
  private async writeState(state: WorkerState): Promise<void> {
    const file = this.stateFile(state.name);
    const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    await writeFile(temp, JSON.stringify(state, null, 2));
    await rename(temp, file);
  }

  private async spawnWorker(state: WorkerState, port: number, cgroups: PreparedCgroups): Promise<OwnChild> {
    await rotateLog(this.logFile(state.name));
    const log = await open(this.logFile(state.name), 'a');
    const base = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? os.tmpdir(),
      ...state.env,
      MODELDOCK_WORKER_PORT: String(port),
      MODELDOCK_WORKER_HOST: '127.0.0.1',
      MODELDOCK_MODELS_DIR: this.options.modelsDir,
      MODELDOCK_DATASETS_DIR: this.options.datasetsDir,
      MODELDOCK_WORKER_NAME: state.name,
    };
    const program = state.server
      ? await this.foreignServer(state, state.server, base)
      : {
          command: this.command.command,
          args: this.command.args,
          cwd: this.command.cwd ?? REPO_ROOT,
          env: {
            NODE_ENV: process.env.NODE_ENV ?? 'production',
            ...base,
            MODELDOCK_LOG_LEVEL: state.env.MODELDOCK_LOG_LEVEL ?? this.options.logger?.level ?? 'info',
          },
        };
    const { command, args } = commandInCgroups(cgroups, program.command, program.args);
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: program.cwd,
        // A process group of its own: it survives the router, and stop() signals the group.
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        // Only what a worker needs: the router's own environment (store credentials...) stays out.
        env: program.env,
      });
    } finally {
      await log.close();
    }
    const exited = new Promise<Exit>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const pid = child.pid;
    if (pid === undefined) {
      const failure = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new RuntimeUnavailableError(`worker ${state.name} could not be started: ${failure.message}`, {
        cause: failure,
      });
    }
    child.unref();
    const own: OwnChild = { name: state.name, pid, child, exited };
    this.children.set(state.name, own);
    void exited.then((exit) => this.onChildExit(own, exit));
    return own;
  }

  /**
   * A foreign server behind its guard (src/worker/guard.ts): the guard listens on the
   * worker's port, the one the router calls, checks the worker secret and forwards to
   * the server, which listens on a loopback port of its own that only the guard is told
   * ({port} and MODELDOCK_WORKER_PORT in the server's command line and environment).
   * The other placeholders: the loopback address, free ports of its own for what else it
   * listens on, and a model repository of its own. That repository holds one entry named
   * after the worker's job, a link to the model's directory in the store, so the server
   * loads and serves the model under the job's name, as modeldock's worker does. Both
   * run in the worker's own directory under the state directory.
   */
  private async foreignServer(state: WorkerState, server: ServerCommand, base: Record<string, string>) {
    const dir = this.serverDir(state.name);
    const repository = path.join(dir, 'models');
    await rm(repository, { recursive: true, force: true });
    await mkdir(repository, { recursive: true, mode: 0o700 });
    // A renamed worker restarted: its old directory goes, the new one is its name's.
    if (state.workDir && state.workDir !== dir) await rm(state.workDir, { recursive: true, force: true });
    const job = state.labels[LABELS.job];
    const model = state.labels[LABELS.model];
    if (job && model && !state.emptyRepository) {
      await symlink(path.join(this.options.modelsDir, model), path.join(repository, job), 'dir');
    }
    const all = [...server.args, ...Object.values(server.env)].join('\n');
    const extra = ['grpcPort', 'metricsPort'].filter((name) => all.includes(`{${name}}`));
    // Distinct from each other and from the guard's port (the worker's, already chosen).
    const [serverPort, ...extraPorts] = await freeLoopbackPorts(1 + extra.length, [
      Number(base.MODELDOCK_WORKER_PORT),
    ]);
    const values: Record<string, string> = {
      host: base.MODELDOCK_WORKER_HOST!,
      port: String(serverPort),
      modelsDir: repository,
      datasetsDir: this.options.datasetsDir,
    };
    extra.forEach((name, i) => (values[name] = String(extraPorts[i])));
    const filled = fillServerCommand(server, values);
    const guard = guardCommand(this.command);
    return {
      ...besideGuard(guard, [filled.command, ...filled.args], dir),
      // The guard runs where the worker does (its entry point may be resolved from
      // there); the server in its own directory.
      cwd: guard.cwd ?? REPO_ROOT,
      env: {
        // A pooled server's guard links models of the store into its repository.
        ...(state.emptyRepository ? { [GUARD_STORE_DIR_ENV]: this.options.modelsDir } : {}),
        NODE_ENV: process.env.NODE_ENV ?? 'production',
        ...base,
        MODELDOCK_LOG_LEVEL: state.env.MODELDOCK_LOG_LEVEL ?? this.options.logger?.level ?? 'info',
        MODELDOCK_GUARD_HOST: base.MODELDOCK_WORKER_HOST!,
        MODELDOCK_GUARD_PORT: base.MODELDOCK_WORKER_PORT!,
        MODELDOCK_WORKER_PORT: String(serverPort),
        MODELDOCK_MODELS_DIR: repository,
        ...filled.env,
      },
    };
  }

  /** A foreign server's working directory, private to the router's user. */
  private serverDir(name: string): string {
    return path.join(this.dir, `${name}.d`);
  }

  /** An own child exited: record it (after whatever start/stop holds the lock) and tell the watchers. */
  private async onChildExit(own: OwnChild, exit: Exit): Promise<void> {
    // A closed runtime is a router that is gone: the next one notices through /proc.
    if (this.closed.signal.aborted) return;
    const error = exit.signal
      ? `killed by ${exit.signal}`
      : exit.code === 0
        ? null
        : `exited with code ${exit.code}`;
    // Under the name it has now (a rename may have changed it since it started, or while
    // this waited for the lock).
    for (;;) {
      const name = own.name;
      const recorded = await this.locks.run(name, async () => {
        if (own.name !== name) return false;
        await this.markExited(name, own.pid, exitCodeOf(exit), error);
        if (this.children.get(name) === own) this.children.delete(name);
        return true;
      });
      if (recorded) return;
    }
  }

  private async isAlive(state: WorkerState): Promise<boolean> {
    if (state.status !== 'running' || state.pid === null || state.startTime === null) return false;
    return isSameProcess(state.pid, state.startTime);
  }

  /**
   * Signal the worker's process group and wait for it to exit, escalating to SIGKILL at
   * the deadline. Called with the worker's lock held, after isAlive() said the pid is ours;
   * every signal is preceded by that check again, so a pid that was reused meanwhile is
   * left alone.
   */
  private async terminate(state: WorkerState, timeoutMs: number, reason: string): Promise<void> {
    const pid = state.pid!;
    const startTime = state.startTime!;
    const signalGroup = async (signal: NodeJS.Signals) => {
      if (!(await isSameProcess(pid, startTime))) return;
      try {
        process.kill(-pid, signal); // the worker's whole process group (detached: it leads it)
      } catch {
        try {
          process.kill(pid, signal);
        } catch {
          // already gone
        }
      }
    };
    const own = this.children.get(state.name);
    const child = own?.pid === pid ? own : undefined;
    await signalGroup(timeoutMs > 0 ? 'SIGTERM' : 'SIGKILL');
    let exit: Exit | undefined;
    if (child) {
      // Workers are unref'd so they never hold the router open; while we wait for one, it must.
      child.child.ref();
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<undefined>(
        (resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs)),
      );
      exit = await Promise.race([child.exited, graceOver]);
      clearTimeout(timer); // a pending grace timer would hold a shutting-down router open
      if (!exit) {
        await signalGroup('SIGKILL');
        exit = await child.exited;
      }
      child.child.unref();
    } else {
      // Not our child (adopted): all we can do is watch /proc until the pid is gone.
      const deadline = Date.now() + timeoutMs;
      let killed = timeoutMs === 0;
      while (await isSameProcess(pid, startTime)) {
        if (!killed && Date.now() >= deadline) {
          await signalGroup('SIGKILL');
          killed = true;
        }
        await delay(20);
      }
    }
    await this.markExited(
      state.name,
      pid,
      exit ? exitCodeOf(exit) : null,
      exit?.signal ? `${reason} (${exit.signal})` : reason,
    );
  }

  /**
   * Record an exit (the caller holds the worker's lock) and tell this runtime's watchers
   * once. Another runtime object of the same instance may have recorded it first (a
   * restarted router in the same process, as in tests): then only the announcement is due.
   */
  private async markExited(name: string, pid: number, exitCode: number | null, error: string | null) {
    try {
      const state = await this.readState(name);
      if (!state || state.pid !== pid || state.status === 'created') return;
      await this.killRemains(state);
      if (state.status === 'exited') return this.announceDeath(state);
      const oomKilled = await wasOomKilled(state.cgroups ?? []);
      const exited: WorkerState = {
        ...state,
        status: 'exited',
        exitCode,
        oomKilled,
        error: oomKilled ? 'killed by the kernel OOM killer (memory limit)' : error,
        finishedAt: new Date().toISOString(),
      };
      await this.writeState(exited);
      this.announceDeath(exited);
    } catch (failure) {
      this.options.logger?.warn(
        { worker: name, err: errorMessage(failure) },
        'could not record a worker exit',
      );
    }
  }

  /**
   * What is left of a worker whose first process died: whatever it started. A foreign
   * server's guard killed alone would leave the server running unseen, holding its memory
   * and ports, beside the worker the reconciler starts in its place. Those are the
   * processes of the worker's cgroups, and those of its process group that carry its
   * secret (a group outlives its leader, but its id is a pid the machine may reuse).
   */
  private async killRemains(state: WorkerState): Promise<void> {
    const secret = state.env?.[WORKER_SECRET_ENV];
    const remains = new Set(await cgroupMembers(state.cgroups ?? []));
    if (secret) {
      for (const pid of await groupMembersWith(state.pid!, `${WORKER_SECRET_ENV}=${secret}`))
        remains.add(pid);
    }
    remains.delete(process.pid);
    for (const pid of remains) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    if (remains.size > 0) {
      this.options.logger?.warn(
        { worker: state.name, pids: [...remains] },
        'process runtime: the worker died and left processes behind; killed them',
      );
    }
  }

  private announceDeath(state: WorkerState): void {
    const key = `${state.name}:${state.pid}`;
    if (this.announced.has(key)) return;
    this.announced.add(key);
    if (this.seenAlive.get(state.name) === state.pid) this.seenAlive.delete(state.name);
    if (state.oomKilled) this.emit('oom', state);
    this.emit('die', state);
  }

  /**
   * Workers adopted from an earlier router are not our children: watch them through
   * /proc. One found dead is recorded as exited (exit code unknown); one this runtime saw
   * alive that someone else recorded as exited is still announced here.
   */
  private async checkAdopted(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      for (const name of await this.stateNames()) {
        if (this.children.has(name) || this.locks.isBusy(name)) continue;
        await this.locks.run(name, async () => {
          const state = await this.readState(name);
          if (!state || state.pid === null) return;
          if (state.status === 'running') {
            if (await this.isAlive(state)) this.seenAlive.set(name, state.pid);
            else await this.markExited(name, state.pid, null, DIED_UNSEEN);
          } else if (state.status === 'exited' && this.seenAlive.get(name) === state.pid) {
            this.announceDeath(state);
          }
        });
      }
    } finally {
      this.checking = false;
    }
  }

  private async toInfo(state: WorkerState): Promise<WorkerInfo> {
    const alive = await this.isAlive(state);
    const diedUnseen = state.status === 'running' && !alive;
    const endpoint = alive && state.port !== null ? `http://127.0.0.1:${state.port}` : null;
    const secret = state.env?.[WORKER_SECRET_ENV];
    if (endpoint && secret) this.secrets.set(endpoint, secret);
    return {
      id: alive ? `pid:${state.pid}:${state.startTime}` : `process:${state.name}`,
      name: state.name,
      labels: state.labels,
      status: alive ? 'running' : state.status === 'created' ? 'created' : 'exited',
      running: alive,
      exitCode: alive ? null : state.exitCode,
      oomKilled: !alive && state.oomKilled === true,
      error: alive ? null : diedUnseen ? DIED_UNSEEN : state.error,
      endpoint,
      startedAt: state.startedAt,
      finishedAt: alive ? null : state.finishedAt,
    };
  }

  private emit(type: RuntimeEventType, state: WorkerState): void {
    const event: RuntimeEvent = { type, name: state.name, labels: state.labels, time: Date.now() };
    if (type === 'die' && state.exitCode !== null) event.exitCode = state.exitCode;
    this.emitter.emit('event', event);
  }
}
