/**
 * Runtime backend without Docker: each worker is a local process of the same worker
 * code, on its own loopback port. Workers are started detached so they outlive a router
 * restart; what the runtime knows about them lives in one state file per worker
 * (<stateDir>/<instance>/<name>.json: labels, port, pid and the pid's start time), from
 * which a new router adopts them. Only a pid whose start time matches the record is
 * ever signalled.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, on } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ConflictError, InvalidInputError, errorMessage } from '../../errors.js';
import {
  LABELS,
  type Runtime,
  type RuntimeEvent,
  type RuntimeEventType,
  type WorkerInfo,
  type WorkerLimits,
  type WorkerSpec,
} from '../runtime.js';
import { applyLimits, removeLimits } from './cgroup.js';
import { isSameProcess, processStartTime } from './proc.js';

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
  workerCommand?: WorkerCommand;
  logger?: Logger;
  /** How often workers adopted from an earlier router are checked for liveness. */
  adoptedPollMs?: number;
}

interface WorkerState {
  name: string;
  labels: Record<string, string>;
  limits: WorkerLimits;
  env: Record<string, string>;
  status: 'created' | 'running' | 'exited';
  port: number | null;
  pid: number | null;
  startTime: string | null;
  exitCode: number | null;
  error: string | null;
  enforcedLimits: string[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

const NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,127}$/;
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The compiled worker when running compiled, else the TypeScript source through tsx. */
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

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private readonly dir: string;
  private readonly command: WorkerCommand;
  private readonly children = new Map<string, ChildProcess>();
  private readonly emitter = new EventEmitter();
  private readonly watcher: NodeJS.Timeout;
  /** Serializes state-file writes per worker. */
  private readonly writes = new Map<string, Promise<unknown>>();

  constructor(private readonly options: ProcessRuntimeOptions) {
    this.dir = path.join(options.stateDir, options.instance);
    this.command = options.workerCommand ?? defaultWorkerCommand();
    this.emitter.setMaxListeners(0);
    this.watcher = setInterval(() => void this.checkAdopted(), options.adoptedPollMs ?? 250);
    this.watcher.unref();
  }

  async ping(): Promise<void> {
    // The machine itself is the runtime: it is there when we are.
  }

  async prepare(onProgress?: (line: string) => void): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const entry = this.command.args.find((a) => a.endsWith('.js') || a.endsWith('.ts'));
    if (entry && !existsSync(entry))
      throw new InvalidInputError(`worker entry point ${entry} does not exist`);
    onProgress?.(
      `process runtime: workers run as \`${[path.basename(this.command.command), ...this.command.args].join(' ')}\``,
    );
  }

  async create(spec: WorkerSpec): Promise<WorkerInfo> {
    this.checkName(spec.name);
    const existing = await this.readState(spec.name);
    if (existing) return this.toInfo(existing);
    await mkdir(this.dir, { recursive: true });
    const state: WorkerState = {
      name: spec.name,
      labels: { ...spec.labels, [LABELS.managed]: 'true', [LABELS.instance]: this.options.instance },
      limits: spec.limits,
      env: spec.env ?? {},
      status: 'created',
      port: null,
      pid: null,
      startTime: null,
      exitCode: null,
      error: null,
      enforcedLimits: [],
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
    };
    await this.writeState(state);
    this.emit('create', state);
    return this.toInfo(state);
  }

  async start(name: string): Promise<WorkerInfo> {
    const state = await this.requireState(name);
    if (await this.isAlive(state)) return this.toInfo(state);
    const port = await freeLoopbackPort();
    const log = await open(this.logFile(name), 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.command.command, this.command.args, {
        cwd: this.command.cwd ?? REPO_ROOT,
        // Its own process group, so it survives the router and stop() can signal the group.
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? '/tmp',
          NODE_ENV: process.env.NODE_ENV ?? 'production',
          ORT_DISABLE_TELEMETRY: '1',
          ...state.env,
          MODELDOCK_WORKER_PORT: String(port),
          MODELDOCK_WORKER_HOST: '127.0.0.1',
          MODELDOCK_MODELS_DIR: this.options.modelsDir,
          MODELDOCK_DATASETS_DIR: this.options.datasetsDir,
          MODELDOCK_WORKER_NAME: name,
          MODELDOCK_WORKER_THREADS: String(Math.max(1, Math.round(state.limits.nanoCpus / 1e9))),
        },
      });
    } finally {
      await log.close();
    }
    const pid = child.pid;
    if (pid === undefined) throw new ConflictError(`worker ${name} could not be started`);
    child.unref();
    this.children.set(name, child);
    child.once('exit', (code, signal) => void this.onChildExit(name, pid, code, signal));
    const startTime = (await processStartTime(pid)) ?? null;
    const enforcedLimits = await applyLimits(`${this.options.instance}-${name}`, pid, state.limits).catch(
      () => [],
    );
    const running: WorkerState = {
      ...state,
      status: 'running',
      port,
      pid,
      startTime,
      exitCode: null,
      error: null,
      enforcedLimits,
      startedAt: new Date().toISOString(),
      finishedAt: null,
    };
    await this.writeState(running);
    this.emit('start', running);
    return this.toInfo(running);
  }

  async stop(name: string, options?: { timeoutSeconds?: number }): Promise<void> {
    const state = await this.readState(name);
    if (!state || !(await this.isAlive(state))) return;
    await this.terminate(state, (options?.timeoutSeconds ?? 10) * 1000);
    this.emit('stop', state);
  }

  async remove(name: string): Promise<void> {
    const state = await this.readState(name);
    if (!state) return;
    if (await this.isAlive(state)) await this.terminate(state, 0);
    this.children.delete(name);
    await rm(this.stateFile(name), { force: true });
    await rm(this.logFile(name), { force: true });
    await removeLimits(`${this.options.instance}-${name}`);
    this.emit('destroy', state);
  }

  async inspect(name: string): Promise<WorkerInfo | undefined> {
    if (!NAME_PATTERN.test(name)) return undefined;
    const state = await this.readState(name);
    return state ? this.toInfo(state) : undefined;
  }

  async list(): Promise<WorkerInfo[]> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch {
      return [];
    }
    const infos = await Promise.all(
      entries.filter((e) => e.endsWith('.json')).map((e) => this.inspect(e.slice(0, -'.json'.length))),
    );
    return infos.filter((i): i is WorkerInfo => i !== undefined);
  }

  async *events(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    try {
      for await (const [event] of on(this.emitter, 'event', { signal })) yield event as RuntimeEvent;
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    }
  }

  async logs(name: string, options?: { tail?: number }): Promise<string> {
    await this.requireState(name);
    const text = await readFile(this.logFile(name), 'utf8').catch(() => '');
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-(options?.tail ?? 200)).join('\n') + (lines.length ? '\n' : '');
  }

  async close(): Promise<void> {
    // Workers are not ours to stop here: they outlive the router by design.
    clearInterval(this.watcher);
  }

  /** Kill a worker the way a crash would (tests and fault injection). */
  async kill(name: string): Promise<void> {
    const state = await this.requireState(name);
    if (state.pid !== null && (await this.isAlive(state))) process.kill(state.pid, 'SIGKILL');
  }

  // ------------------------------------------------------------------ internals

  private checkName(name: string): void {
    if (!NAME_PATTERN.test(name)) throw new InvalidInputError(`invalid worker name ${name}`);
  }

  private stateFile(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }

  private logFile(name: string): string {
    return path.join(this.dir, `${name}.log`);
  }

  private async readState(name: string): Promise<WorkerState | undefined> {
    if (!NAME_PATTERN.test(name)) return undefined;
    try {
      const state = JSON.parse(await readFile(this.stateFile(name), 'utf8')) as WorkerState;
      // Another instance's file in our directory would be a bug; never act on it.
      if (state.labels?.[LABELS.instance] !== this.options.instance) return undefined;
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

  /** Atomic replace (write then rename), one writer per worker at a time. */
  private async writeState(state: WorkerState): Promise<void> {
    const previous = this.writes.get(state.name) ?? Promise.resolve();
    const next = previous.then(async () => {
      const file = this.stateFile(state.name);
      const temp = `${file}.${process.pid}.tmp`;
      await writeFile(temp, JSON.stringify(state, null, 2));
      await rename(temp, file);
    });
    this.writes.set(
      state.name,
      next.catch(() => undefined),
    );
    await next;
  }

  private async isAlive(state: WorkerState): Promise<boolean> {
    if (state.status !== 'running' || state.pid === null || state.startTime === null) return false;
    return isSameProcess(state.pid, state.startTime);
  }

  private async terminate(state: WorkerState, timeoutMs: number): Promise<void> {
    const pid = state.pid!;
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-pid, signal); // the whole process group of the worker
      } catch {
        try {
          process.kill(pid, signal);
        } catch {
          // already gone
        }
      }
    };
    signalGroup(timeoutMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const deadline = Date.now() + timeoutMs;
    while (await isSameProcess(pid, state.startTime!)) {
      if (Date.now() >= deadline) signalGroup('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await this.markExited(state.name, pid, null, timeoutMs > 0 ? 'stopped' : 'killed');
  }

  private async onChildExit(name: string, pid: number, code: number | null, signal: NodeJS.Signals | null) {
    this.children.delete(name);
    const exitCode = code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : null);
    await this.markExited(name, pid, exitCode, signal ? `killed by ${signal}` : null);
  }

  /** Record an exit once, and tell the watchers. */
  private async markExited(name: string, pid: number, exitCode: number | null, error: string | null) {
    try {
      const state = await this.readState(name);
      if (!state || state.pid !== pid || state.status !== 'running') return;
      const exited: WorkerState = {
        ...state,
        status: 'exited',
        exitCode: exitCode ?? state.exitCode,
        error,
        finishedAt: new Date().toISOString(),
      };
      await this.writeState(exited);
      this.emit('die', exited);
    } catch (failure) {
      this.options.logger?.warn({ name, err: errorMessage(failure) }, 'could not record a worker exit');
    }
  }

  /** Workers adopted from an earlier router are not our children: watch them through /proc. */
  private async checkAdopted(): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch {
      return;
    }
    for (const entry of entries) {
      if (!entry.endsWith('.json')) continue;
      const name = entry.slice(0, -'.json'.length);
      if (this.children.has(name)) continue;
      const state = await this.readState(name);
      if (state?.status === 'running' && state.pid !== null && !(await this.isAlive(state))) {
        await this.markExited(name, state.pid, null, 'exited while not watched by this router');
      }
    }
  }

  private async toInfo(state: WorkerState): Promise<WorkerInfo> {
    const alive = await this.isAlive(state);
    const diedUnseen = state.status === 'running' && !alive;
    return {
      id: alive ? `pid:${state.pid}:${state.startTime}` : `process:${state.name}`,
      name: state.name,
      labels: state.labels,
      status: alive ? 'running' : state.status === 'created' ? 'created' : 'exited',
      running: alive,
      exitCode: alive ? null : state.exitCode,
      oomKilled: false,
      error: diedUnseen ? 'exited while not watched by this router' : alive ? null : state.error,
      endpoint: alive && state.port !== null ? `http://127.0.0.1:${state.port}` : null,
      startedAt: state.startedAt,
      finishedAt: alive ? null : state.finishedAt,
    };
  }

  private emit(type: RuntimeEventType, state: WorkerState, exitCode?: number | null): void {
    const event: RuntimeEvent = {
      type,
      name: state.name,
      labels: state.labels,
      time: Date.now(),
      ...(exitCode !== undefined && exitCode !== null ? { exitCode } : {}),
    };
    if (type === 'die' && state.exitCode !== null) event.exitCode = state.exitCode;
    this.emitter.emit('event', event);
  }
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  const numbers: Partial<Record<NodeJS.Signals, number>> = {
    SIGKILL: 9,
    SIGTERM: 15,
    SIGINT: 2,
    SIGSEGV: 11,
    SIGABRT: 6,
  };
  return numbers[signal];
}
