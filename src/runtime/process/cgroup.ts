/**
 * Best-effort resource limits for worker processes through cgroups (v2, or v1's memory
 * and pids controllers) when the router may write them, usually only as root. Where it
 * cannot, the limits are reported as not enforced; docs/runtime-process.md says so.
 */
import { access, mkdir, rmdir, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import type { WorkerLimits } from '../runtime.js';

const ROOT = '/sys/fs/cgroup';

async function writable(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Puts `pid` into a cgroup of its own with the limits; returns what is enforced. */
export async function applyLimits(group: string, pid: number, limits: WorkerLimits): Promise<string[]> {
  const enforced: string[] = [];
  try {
    await access(path.join(ROOT, 'cgroup.controllers'));
    // cgroup v2: one unified hierarchy.
    if (!(await writable(ROOT))) return enforced;
    const dir = path.join(ROOT, group);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'memory.max'), String(limits.memoryBytes)).then(() =>
      enforced.push('memory'),
    );
    await writeFile(path.join(dir, 'pids.max'), String(limits.pids)).then(() => enforced.push('pids'));
    const period = 100_000;
    await writeFile(
      path.join(dir, 'cpu.max'),
      `${Math.round((limits.nanoCpus / 1e9) * period)} ${period}`,
    ).then(
      () => enforced.push('cpu'),
      () => undefined,
    );
    await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
    return enforced;
  } catch {
    // not v2, or a controller is not delegated: try v1 below
  }
  for (const [controller, file, value] of [
    ['memory', 'memory.limit_in_bytes', String(limits.memoryBytes)],
    ['pids', 'pids.max', String(limits.pids)],
  ] as const) {
    const base = path.join(ROOT, controller);
    if (!(await writable(base))) continue;
    try {
      const dir = path.join(base, group);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, file), value);
      await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
      enforced.push(controller);
    } catch {
      // this controller is not available to us
    }
  }
  return enforced;
}

export async function removeLimits(group: string): Promise<void> {
  for (const dir of [
    path.join(ROOT, group),
    path.join(ROOT, 'memory', group),
    path.join(ROOT, 'pids', group),
  ]) {
    await rmdir(dir).catch(() => undefined);
  }
}
