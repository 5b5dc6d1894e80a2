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
