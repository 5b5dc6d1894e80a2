/**
 * What /proc says about a pid. A pid is only "ours" while its start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot) equals the one recorded when we started
 * it, so a pid reused by an unrelated process is never mistaken for a worker.
 */
import { readFile, readdir } from 'node:fs/promises';

export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X') return undefined; // a zombie is as good as gone
    return fields[19];
  } catch {
    return undefined;
  }
}

export async function isSameProcess(pid: number, startTime: string): Promise<boolean> {
  return (await processStartTime(pid)) === startTime;
}

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

/**
 * The live processes of process group `pgid` whose environment holds `entry`
 * (`NAME=value`). A group outlives its leader while a member lives, but once it is empty
 * its id may be another process's: the entry (a worker's secret) says whose they are.
 */
export async function groupMembersWith(pgid: number, entry: string): Promise<number[]> {
  const members: number[] = [];
  // Most often there is no such group any more, which one signal 0 tells without a scan.
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return members;
  }
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // Field 5 (pgrp), counted from field 3, the first after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid || fields[0] === 'Z') continue;
    const environ = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(entry)) members.push(Number(name));
  }
  return members;
}
