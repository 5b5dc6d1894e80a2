/**
 * Best-effort resource limits for worker processes through cgroups. A worker gets a
 * cgroup of its own *below the router's own cgroup* (never at the hierarchy root, which
 * would let it escape the limits the router itself runs under, e.g. a container's).
 *
 * - cgroup v2 (unified at /sys/fs/cgroup): needs the controllers enabled in the router's
 *   cgroup, which the kernel refuses while that cgroup holds processes (the router) unless
 *   it is the root; so v2 usually works only for a router in the root cgroup or in a
 *   delegated, otherwise empty one.
 * - cgroup v1 (memory, pids, cpu hierarchies): a child cgroup per controller, usually
 *   writable by root.
 *
 * What could not be enforced is reported, never pretended: the caller records the list
 * of enforced limits and docs/runtime-process.md explains the rest. RLIMIT_AS is not used
 * on purpose: V8 and ONNX Runtime reserve far more address space than they use, so an
 * address-space limit kills healthy workers instead of bounding memory.
 */
import { constants } from 'node:fs';
import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkerLimits } from '../runtime.js';

const ROOT = '/sys/fs/cgroup';
const CPU_PERIOD_US = 100_000;

export type EnforcedLimit = 'memory' | 'pids' | 'cpu';

export interface CgroupPlacement {
  /** The limits the kernel enforces for this worker. */
  enforced: EnforcedLimit[];
  /** The cgroup directories created for it (for OOM accounting and removal). */
  dirs: string[];
}

/** The router's own cgroup path per v1 controller, and the v2 path under key ''. */
async function ownCgroups(): Promise<Map<string, string>> {
  const paths = new Map<string, string>();
  const text = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    const [, controllers = '', cgroupPath = '/'] = match;
    if (controllers === '') paths.set('', cgroupPath);
    for (const controller of controllers.split(',')) if (controller) paths.set(controller, cgroupPath);
  }
  return paths;
}

async function exists(file: string, mode = constants.F_OK): Promise<boolean> {
  return access(file, mode).then(
    () => true,
    () => false,
  );
}

async function attempt(step: () => Promise<unknown>): Promise<boolean> {
  return step().then(
    () => true,
    () => false,
  );
}

function cpuQuotaUs(limits: WorkerLimits): number {
  return Math.max(1000, Math.round((limits.nanoCpus / 1e9) * CPU_PERIOD_US));
}

async function placeV2(
  group: string,
  pid: number,
  limits: WorkerLimits,
  own: string,
): Promise<CgroupPlacement> {
  const parent = path.join(ROOT, own);
  const dir = path.join(parent, group);
  const enforced: EnforcedLimit[] = [];
  if (!(await exists(parent, constants.W_OK))) return { enforced, dirs: [] };
  for (const controller of ['memory', 'pids', 'cpu']) {
    await attempt(() => writeFile(path.join(parent, 'cgroup.subtree_control'), `+${controller}`));
  }
  if (!(await attempt(() => mkdir(dir, { recursive: true })))) return { enforced, dirs: [] };
  const settings: [EnforcedLimit, string, string][] = [
    ['memory', 'memory.max', String(limits.memoryBytes)],
    ['pids', 'pids.max', String(limits.pids)],
    ['cpu', 'cpu.max', `${cpuQuotaUs(limits)} ${CPU_PERIOD_US}`],
  ];
  for (const [limit, file, value] of settings) {
    // Writing a controller's file only succeeds when the controller is enabled here.
    if (await attempt(() => writeFile(path.join(dir, file), value))) enforced.push(limit);
  }
  if (!(await attempt(() => writeFile(path.join(dir, 'cgroup.procs'), String(pid))))) {
    await rmdir(dir).catch(() => undefined);
    return { enforced: [], dirs: [] };
  }
  return { enforced, dirs: [dir] };
}

async function placeV1(
  group: string,
  pid: number,
  limits: WorkerLimits,
  own: Map<string, string>,
): Promise<CgroupPlacement> {
  const placement: CgroupPlacement = { enforced: [], dirs: [] };
  const settings: [EnforcedLimit, [string, string][]][] = [
    ['memory', [['memory.limit_in_bytes', String(limits.memoryBytes)]]],
    ['pids', [['pids.max', String(limits.pids)]]],
    [
      'cpu',
      [
        ['cpu.cfs_period_us', String(CPU_PERIOD_US)],
        ['cpu.cfs_quota_us', String(cpuQuotaUs(limits))],
      ],
    ],
  ];
  for (const [controller, files] of settings) {
    const ownPath = own.get(controller);
    const mount = path.join(ROOT, controller);
    if (ownPath === undefined || !(await exists(mount, constants.W_OK))) continue;
    const dir = path.join(mount, ownPath, group);
    if (!(await attempt(() => mkdir(dir, { recursive: true })))) continue;
    let ok = true;
    for (const [file, value] of files) ok &&= await attempt(() => writeFile(path.join(dir, file), value));
    ok &&= await attempt(() => writeFile(path.join(dir, 'cgroup.procs'), String(pid)));
    if (ok) {
      placement.enforced.push(controller);
      placement.dirs.push(dir);
    } else {
      await rmdir(dir).catch(() => undefined);
    }
  }
  return placement;
}

/** Moves `pid` into cgroups of its own (named `group`) carrying the limits. */
export async function confine(group: string, pid: number, limits: WorkerLimits): Promise<CgroupPlacement> {
  try {
    const own = await ownCgroups();
    if (await exists(path.join(ROOT, 'cgroup.controllers'))) {
      return await placeV2(group, pid, limits, own.get('') ?? '/');
    }
    return await placeV1(group, pid, limits, own);
  } catch {
    return { enforced: [], dirs: [] };
  }
}

/** Whether the kernel's OOM killer killed a process of these cgroups. */
export async function wasOomKilled(dirs: string[]): Promise<boolean> {
  for (const dir of dirs) {
    // v2: memory.events; v1: memory.oom_control (both carry an `oom_kill <count>` line).
    for (const file of ['memory.events', 'memory.oom_control']) {
      const text = await readFile(path.join(dir, file), 'utf8').catch(() => '');
      const count = /^oom_kill (\d+)$/m.exec(text)?.[1];
      if (count !== undefined && Number(count) > 0) return true;
    }
  }
  return false;
}

/**
 * Removes the cgroups of a worker that exited. A process that just died may still be
 * listed (not yet reaped) for a moment, which makes rmdir fail with EBUSY: retry briefly.
 */
export async function release(dirs: string[], timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const dir of dirs) {
    for (;;) {
      const error = await rmdir(dir).then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e,
      );
      if (!error || error.code !== 'EBUSY' || Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
