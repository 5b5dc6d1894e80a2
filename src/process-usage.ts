/**
 * CPU and memory of a process, and of a process with everything it started, from /proc:
 * what the process runtime reports for a worker, and what the guard in front of a
 * foreign server reports for itself and its server where nothing else measures them (a
 * Pod: the router reads no metrics API).
 */
import { readFile, readdir } from 'node:fs/promises';

/**
 * Linux reports CPU times in /proc in clock ticks of USER_HZ, which is 100 on every
 * architecture Node.js runs on (the kernel's ABI, unlike the internal HZ).
 */
const USER_HZ = 100;

/** CPU time (user + system, seconds) and resident memory (bytes) of a process. */
export async function processUsage(
  pid: number,
): Promise<{ cpuSeconds: number; rssBytes: number } | undefined> {
  try {
    const [stat, status] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/status`, 'utf8'),
    ]);
    // Fields 14 and 15 (utime, stime) counted from field 3, the first after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    const rssKiB = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
    return { cpuSeconds: ticks / USER_HZ, rssBytes: rssKiB * 1024 };
  } catch {
    return undefined;
  }
}

/** The processes a process started, from /proc (its threads' children files). */
async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const children: number[] = [];
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, 'utf8').catch(() => '');
    for (const child of text.split(' ')) if (child.trim()) children.push(Number(child));
  }
  return children;
}

/**
 * CPU and memory of a process and everything it started, summed: a worker that is a
 * foreign server behind its guard is both processes (and whatever the server forks).
 */
export async function processTreeUsage(
  pid: number,
): Promise<{ cpuSeconds: number; rssBytes: number } | undefined> {
  const root = await processUsage(pid);
  if (!root) return undefined;
  const total = { ...root };
  const pending = await childrenOf(pid);
  for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
    const usage = await processUsage(next);
    if (!usage) continue;
    total.cpuSeconds += usage.cpuSeconds;
    total.rssBytes += usage.rssBytes;
    pending.push(...(await childrenOf(next)));
  }
  return total;
}
