/**
 * A foreign server the guard did not spawn but is the parent of: the process runtime's
 * shell forks the server and then becomes the guard (exec keeps its pid), so the server
 * starts without waiting for Node.js to boot the guard (guard-main.ts). Node.js reaps
 * only children it spawned, so the server's exit is read from /proc: the kernel signals
 * the parent (SIGCHLD) when a child exits, and the child stays a zombie, its exit
 * status in /proc/<pid>/stat, until the guard exits and its own parent reaps it. Its pid
 * cannot be reused meanwhile, so signalling it is always signalling the server.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What /proc says of `pid`: its parent and, once it has exited, its exit status. */
function procStat(pid: number): { parent: number; exit?: ServerExit } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields from the third on (after the command name, which may hold spaces and ')').
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const parent = Number(fields[1]);
  if (fields[0] !== 'Z' && fields[0] !== 'X') return { parent };
  // Field 52, exit_code: the status as waitpid(2) reports it.
  const status = Number(fields[49] ?? 0);
  const signal = status & 0x7f;
  if (signal === 0) return { parent, exit: { code: (status >> 8) & 0xff, signal: null } };
  const name = Object.entries(os.constants.signals).find(([, n]) => n === signal)?.[0];
  return { parent, exit: { code: name ? null : 128 + signal, signal: (name as NodeJS.Signals) ?? null } };
}

export class AdoptedServer {
  private exited = false;
  private readonly poll: NodeJS.Timeout;

  /** Throws unless `pid` is this process's child. */
  constructor(
    readonly pid: number,
    private readonly onExit: (exit: ServerExit) => void,
  ) {
    const stat = procStat(pid);
    if (stat?.parent !== process.pid) {
      throw new Error(`MODELDOCK_GUARD_SERVER_PID ${pid} is not a process this guard started`);
    }
    process.on('SIGCHLD', () => this.check());
    // A SIGCHLD before the handler above existed was ignored: look once now, and now and
    // then, in case a signal is ever missed.
    this.poll = setInterval(() => this.check(), 1_000);
    this.check();
  }

  get running(): boolean {
    return !this.exited;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exited) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // exited meanwhile: the next check says so
    }
  }

  private check(): void {
    if (this.exited) return;
    const stat = procStat(this.pid);
    const exit = stat ? stat.exit : { code: null, signal: null };
    if (!exit) return;
    this.exited = true;
    clearInterval(this.poll);
    this.onExit(exit);
  }
}
