/**
 * What /proc says about a pid. A pid is only "ours" while its start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot) equals the one recorded when we started
 * it, so a pid reused by an unrelated process is never mistaken for a worker.
 */
import { readFile } from 'node:fs/promises';

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
