/**
 * The power-loss test's file system (tools/lazyfs, built by scripts/lazyfs.sh): a FUSE
 * mount that keeps what was not fsynced in memory and drops it on `cut()`, as a power cut
 * would. Mounting needs /dev/fuse and root; when it cannot mount, the test fails with
 * lazyfs's own message (it is never skipped).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { REPO_ROOT } from './paths.js';

export interface LazyFs {
  /** The mount point. */
  dir: string;
  /** Cut the power: every file goes back to what was last fsynced. Says how much was lost. */
  cut(): Promise<{ files: number; bytes: number }>;
  /** Unmount (everything on it is gone) and remove the mount point. */
  close(): Promise<void>;
}

const BINARY = path.join(
  process.env.MODELDOCK_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'modeldock'),
  'lazyfs',
  'lazyfs',
);

export async function startLazyFs(): Promise<LazyFs> {
  await promisify(execFile)('bash', [path.join(REPO_ROOT, 'scripts/lazyfs.sh'), 'build'], { cwd: REPO_ROOT });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-lazyfs-'));
  const child: ChildProcess = spawn(BINARY, [dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const nextLine = async (what: string): Promise<string> => {
    const line = await Promise.race([
      lines.next(),
      exited.then(() => ({ done: true, value: undefined }) as const),
    ]);
    if (line.done) throw new Error(`lazyfs exited before "${what}": ${stderr.trim()}`);
    return line.value;
  };
  const first = await nextLine('mounted');
  if (first !== 'mounted') throw new Error(`lazyfs said "${first}" instead of "mounted": ${stderr.trim()}`);
  return {
    dir,
    cut: async () => {
      child.kill('SIGUSR1');
      const [word, files, bytes] = (await nextLine('cut')).split(' ');
      if (word !== 'cut') throw new Error(`lazyfs answered the cut with "${word}"`);
      return { files: Number(files), bytes: Number(bytes) };
    },
    close: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(kill);
      }
      await rmdir(dir).catch(() => undefined);
    },
  };
}
