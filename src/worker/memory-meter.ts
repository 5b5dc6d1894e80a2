/**
 * The worker's memory as the kernel measures it, so that each model is accounted by what
 * loading it really cost (docs/worker.md#memory-per-model) — not by its file size, nor by
 * a number someone declared.
 *
 * - `cgroup`: the worker has a cgroup of its own — one that holds no process but the
 *   worker and, in a container, its init (a container, a Pod, a process-runtime worker
 *   whose limits the kernel enforces). Its use is the cgroup's *working set*: memory.current
 *   (v2) or memory.usage_in_bytes (v1) minus the inactive file pages the kernel can drop
 *   at will, which is what `docker stats` and the kubelet report and what the OOM killer
 *   acts on. Reading a model file fills the page cache; that is not the model's memory.
 *   Its limit is memory.max / memory.limit_in_bytes.
 * - `rss`: the process's resident memory, when its cgroup holds other processes too (a
 *   worker started by hand, a process-runtime worker left in the router's group) whose
 *   memory the cgroup's figures would count, or when the cgroup's files cannot be read.
 *   No limit is known then.
 *
 * Which one is measured is in every reading (`source`), and in the worker's stats.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export type MemorySource = 'cgroup' | 'rss';

export interface MemoryReading {
  /** Bytes in use now (the cgroup's working set, or the process's rss). */
  bytes: number;
  /** The cgroup's memory limit; null when there is none, or when measured by rss. */
  limitBytes: number | null;
  source: MemorySource;
}

export interface MemoryMeter {
  read(): Promise<MemoryReading>;
}

/** cgroup v1 writes "no limit" as the largest page-aligned 63-bit number. */
const V1_UNLIMITED = 2 ** 62;

/** The process's resident memory (no limit known). */
export const rssMeter: MemoryMeter = {
  read: async () => ({ bytes: process.memoryUsage.rss(), limitBytes: null, source: 'rss' }),
};

interface CgroupFiles {
  procs: string;
  usage: string;
  stat: string;
  limit: string;
  /** The memory.stat key of the inactive file pages. */
  inactiveFileKey: string;
}

/**
 * The worker's memory meter: its cgroup's when the cgroup is its own and readable, else
 * its rss. `root` is where the cgroup hierarchies are mounted.
 */
export async function openMemoryMeter(root = '/sys/fs/cgroup'): Promise<MemoryMeter> {
  const files = await findCgroupFiles(root);
  if (!files) return rssMeter;
  return {
    // Read synchronously: the kernel writes these files on demand, from memory, in
    // microseconds, while three asynchronous reads each wait for a thread-pool turn (a
    // dozen turns per reading, behind file reads and session creations on a busy worker),
    // which held every load measured after it.
    read: async () => {
      const usage = readFileSync(files.usage, 'utf8');
      const stat = readFileSync(files.stat, 'utf8');
      const limit = readFileSync(files.limit, 'utf8');
      const inactiveFile = statValue(stat, files.inactiveFileKey);
      const limitBytes = limit.trim() === 'max' ? null : Number(limit.trim());
      return {
        bytes: Math.max(0, Number(usage.trim()) - inactiveFile),
        limitBytes: limitBytes === null || limitBytes >= V1_UNLIMITED ? null : limitBytes,
        source: 'cgroup',
      };
    },
  };
}

function statValue(stat: string, key: string): number {
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(stat);
  return match ? Number(match[1]) : 0;
}

/**
 * The memory files of this process's cgroup. /proc/self/cgroup names its path; inside a
 * container with a private cgroup namespace that path is "/", and on cgroup v1 without
 * one it is the host's path while the container sees its own group at the mount's root:
 * so the path is tried first, then the mount's root.
 */
async function findCgroupFiles(root: string): Promise<CgroupFiles | undefined> {
  const text = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  const v1: CgroupFiles[] = [];
  const v2: CgroupFiles[] = [];
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    const [, controllers = '', own = '/'] = match;
    if (controllers === '') {
      for (const dir of [path.join(root, own), root]) {
        v2.push({
          procs: path.join(dir, 'cgroup.procs'),
          usage: path.join(dir, 'memory.current'),
          stat: path.join(dir, 'memory.stat'),
          limit: path.join(dir, 'memory.max'),
          inactiveFileKey: 'inactive_file',
        });
      }
    } else if (controllers.split(',').includes('memory')) {
      const mount = path.join(root, 'memory');
      for (const dir of [path.join(mount, own), mount]) {
        v1.push({
          procs: path.join(dir, 'cgroup.procs'),
          usage: path.join(dir, 'memory.usage_in_bytes'),
          stat: path.join(dir, 'memory.stat'),
          limit: path.join(dir, 'memory.limit_in_bytes'),
          inactiveFileKey: 'total_inactive_file',
        });
      }
    }
  }
  // v1 first: on a hybrid host the unified line is there too, without the memory controller.
  for (const files of [...v1, ...v2]) {
    const procs = await readFile(files.procs, 'utf8').catch(() => undefined);
    if (procs === undefined) continue;
    // The first group that exists decides: ours alone, or shared (then the rss).
    if (!holdsOnlyThisProcess(procs)) return undefined;
    const readable = await Promise.all([files.usage, files.stat, files.limit].map((f) => readFile(f, 'utf8')))
      .then(() => true)
      .catch(() => false);
    return readable ? files : undefined;
  }
  return undefined;
}

/**
 * Whether a cgroup.procs listing names this process and nothing else but, in a
 * container, its init (pid 1 as its parent: Docker's `--init`, which modeldock's
 * containers run with; it holds about a MiB). A process the reader cannot see (another
 * pid namespace) is listed as 0, so it counts as another.
 */
function holdsOnlyThisProcess(procs: string): boolean {
  const pids = procs
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
  const ours = (pid: number) => pid === process.pid || (pid === 1 && process.ppid === 1);
  return pids.includes(process.pid) && pids.every(ours);
}
