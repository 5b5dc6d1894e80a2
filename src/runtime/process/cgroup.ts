/**
 * Best-effort resource limits for worker processes through cgroups. A worker gets a
 * cgroup of its own under a `modeldock` group *below the router's own cgroup* — never at
 * the hierarchy root, even when the router's own group is `/`, and never loose beside the
 * router, so modeldock's workers are one subtree an operator can find and bound.
 *
 * The groups are made and given their limits before the worker exists, and the worker
 * joins them before it runs a single instruction of its own: it is started through a
 * shell shim that writes its own pid into each group's cgroup.procs and then execs the
 * worker (same pid, so the worker's code starts inside). Membership is then read back
 * from /proc/<pid>/cgroup: what is reported as enforced is what the kernel says.
 *
 * - cgroup v2 (unified at /sys/fs/cgroup): needs the controllers enabled in the router's
 *   cgroup, which the kernel refuses while that cgroup holds processes (the router) unless
 *   it is the root; so v2 usually works only for a router in the root cgroup or in a
 *   delegated, otherwise empty one. Swap: memory.swap.max = 0.
 * - cgroup v1 (memory, pids, cpu hierarchies): a child cgroup per controller, usually
 *   writable by root. Swap: memory.memsw.limit_in_bytes = the memory limit (memory plus
 *   swap equal to memory: no swap, as Docker does), where the kernel accounts swap.
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
/** The group every worker group sits in, below the router's own. */
export const PARENT_GROUP = 'modeldock';

export type EnforcedLimit = 'memory' | 'swap' | 'pids' | 'cpu';

export interface CgroupPlacement {
  /** The limits the kernel enforces for this worker. */
  enforced: EnforcedLimit[];
  /** The cgroup directories created for it (for OOM accounting and removal). */
  dirs: string[];
}

/** A prepared group: its directory, the limits set on it, and how /proc names it. */
interface PreparedGroup {
  dir: string;
  limits: EnforcedLimit[];
  /** The controller list of its /proc/<pid>/cgroup line ('' on v2). */
  controller: string;
  /** Its path inside its hierarchy, as /proc/<pid>/cgroup shows it. */
  relative: string;
}

export interface PreparedCgroups {
  groups: PreparedGroup[];
  /**
   * Why a group or limit could not be made, one line per refusal (`mkdir …: EACCES`):
   * logged with the limits left unenforced, so an operator sees the kernel's reason.
   */
  problems: string[];
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

/** Runs a step the kernel may refuse; a refusal is noted in `problems` (what, and why) and reported as false. */
async function attempt(problems: string[], what: string, step: () => Promise<unknown>): Promise<boolean> {
  return step().then(
    () => true,
    (error: unknown) => {
      problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      return false;
    },
  );
}

function cpuQuotaUs(limits: WorkerLimits): number {
  return Math.max(1000, Math.round((limits.nanoCpus / 1e9) * CPU_PERIOD_US));
}

async function prepareV2(
  root: string,
  group: string,
  limits: WorkerLimits,
  own: string,
  problems: string[],
): Promise<PreparedGroup[]> {
  const ownDir = path.join(root, own);
  const parent = path.join(ownDir, PARENT_GROUP);
  const dir = path.join(parent, group);
  if (!(await exists(ownDir, constants.W_OK))) {
    problems.push(`${ownDir} (the router's own cgroup) is not writable`);
    return [];
  }
  if (!(await attempt(problems, `mkdir ${parent}`, () => mkdir(parent, { recursive: true })))) return [];
  for (const level of [ownDir, parent]) {
    for (const controller of ['memory', 'pids', 'cpu']) {
      const control = path.join(level, 'cgroup.subtree_control');
      await attempt(problems, `+${controller} in ${control}`, () => writeFile(control, `+${controller}`));
    }
  }
  if (!(await attempt(problems, `mkdir ${dir}`, () => mkdir(dir, { recursive: true })))) return [];
  const settings: [EnforcedLimit, string, string][] = [
    ['memory', 'memory.max', String(limits.memoryBytes)],
    ['swap', 'memory.swap.max', '0'],
    ['pids', 'pids.max', String(limits.pids)],
    ['cpu', 'cpu.max', `${cpuQuotaUs(limits)} ${CPU_PERIOD_US}`],
  ];
  const set: EnforcedLimit[] = [];
  for (const [limit, file, value] of settings) {
    // Writing a controller's file only succeeds when the controller is enabled here.
    if (await attempt(problems, `${file} = ${value}`, () => writeFile(path.join(dir, file), value))) {
      set.push(limit);
    }
  }
  return [{ dir, limits: set, controller: '', relative: path.relative(root, dir) }];
}

async function prepareV1(
  root: string,
  group: string,
  limits: WorkerLimits,
  own: Map<string, string>,
  problems: string[],
): Promise<PreparedGroup[]> {
  const groups: PreparedGroup[] = [];
  const settings: [string, [EnforcedLimit, string, string][]][] = [
    [
      'memory',
      [
        ['memory', 'memory.limit_in_bytes', String(limits.memoryBytes)],
        // After the memory limit: the kernel wants memory + swap >= memory.
        ['swap', 'memory.memsw.limit_in_bytes', String(limits.memoryBytes)],
      ],
    ],
    ['pids', [['pids', 'pids.max', String(limits.pids)]]],
    [
      'cpu',
      [
        ['cpu', 'cpu.cfs_period_us', String(CPU_PERIOD_US)],
        ['cpu', 'cpu.cfs_quota_us', String(cpuQuotaUs(limits))],
      ],
    ],
  ];
  for (const [controller, files] of settings) {
    const ownPath = own.get(controller);
    const mount = path.join(root, controller);
    if (ownPath === undefined || !(await exists(mount, constants.W_OK))) {
      problems.push(`no writable ${controller} hierarchy at ${mount}`);
      continue;
    }
    const dir = path.join(mount, ownPath, PARENT_GROUP, group);
    if (!(await attempt(problems, `mkdir ${dir}`, () => mkdir(dir, { recursive: true })))) continue;
    const set = new Set<EnforcedLimit>();
    const failed = new Set<EnforcedLimit>();
    for (const [limit, file, value] of files) {
      // Swap accounting may be off in the kernel (no memsw files): then swap is not bounded.
      if (limit === 'swap' && !(await exists(path.join(dir, file)))) continue;
      if (await attempt(problems, `${file} = ${value}`, () => writeFile(path.join(dir, file), value))) {
        set.add(limit);
      } else failed.add(limit);
    }
    for (const limit of failed) set.delete(limit);
    if (!set.has(controller as EnforcedLimit)) {
      await rmdir(dir).catch(() => undefined);
      continue;
    }
    groups.push({ dir, limits: [...set], controller, relative: path.relative(mount, dir) });
  }
  return groups;
}

/**
 * Makes the worker's cgroups (named `group`) with their limits, before the worker exists.
 * `root` is where the hierarchies are mounted (a test mounts a cgroup2 of its own).
 */
export async function prepareCgroups(
  group: string,
  limits: WorkerLimits,
  root = ROOT,
): Promise<PreparedCgroups> {
  const problems: string[] = [];
  try {
    const own = await ownCgroups();
    if (await exists(path.join(root, 'cgroup.controllers'))) {
      return { groups: await prepareV2(root, group, limits, own.get('') ?? '/', problems), problems };
    }
    return { groups: await prepareV1(root, group, limits, own, problems), problems };
  } catch (error) {
    problems.push(`preparing cgroups failed: ${error instanceof Error ? error.message : String(error)}`);
    return { groups: [], problems };
  }
}

/**
 * The command that runs `command args` inside the prepared groups from its first
 * instruction: a POSIX shell writes its own pid into each group's cgroup.procs, then execs
 * the command (same pid). A write the kernel refuses is left to verifyPlacement to see.
 */
export function commandInCgroups(
  prepared: PreparedCgroups,
  command: string,
  args: string[],
): { command: string; args: string[] } {
  if (prepared.groups.length === 0) return { command, args };
  const joins = prepared.groups.map((_, i) => `echo $$ > "$${i + 1}/cgroup.procs" 2>/dev/null`).join('; ');
  const shift = prepared.groups.length;
  return {
    command: '/bin/sh',
    args: [
      '-c',
      `${joins}; shift ${shift}; exec "$@"`,
      'modeldock-cgroup-shim',
      ...prepared.groups.map((g) => g.dir),
      command,
      ...args,
    ],
  };
}

/**
 * What the kernel says: the groups the process `pid` is in, read from /proc once the shim
 * has moved it (or given up and exec'd). Groups it is not in are removed; the limits of
 * the ones it is in are the enforced ones.
 */
export async function verifyPlacement(
  pid: number,
  prepared: PreparedCgroups,
  timeoutMs = 2_000,
): Promise<CgroupPlacement> {
  if (prepared.groups.length === 0) return { enforced: [], dirs: [] };
  const deadline = Date.now() + timeoutMs;
  let lines: string[] = [];
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    // The command line first: once it shows the shim is past, the groups read next are final.
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    lines = text.split('\n');
    const joined = prepared.groups.every((g) => isIn(lines, g));
    // Joined everywhere, or past the shim (exec'd: its name is gone), or gone: look no more.
    if (joined || text === '' || !cmdline.includes('modeldock-cgroup-shim') || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  const placement: CgroupPlacement = { enforced: [], dirs: [] };
  for (const group of prepared.groups) {
    if (isIn(lines, group)) {
      placement.enforced.push(...group.limits);
      placement.dirs.push(group.dir);
    } else {
      await rmdir(group.dir).catch(() => undefined);
    }
  }
  return placement;
}

function isIn(lines: string[], group: PreparedGroup): boolean {
  return lines.some((line) => {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) return false;
    const controllers = match[1]!.split(',');
    const inHierarchy = group.controller === '' ? match[1] === '' : controllers.includes(group.controller);
    return inHierarchy && match[2] === `/${group.relative}`;
  });
}

/** Removes prepared groups a worker never got to join (its spawn failed). */
export async function discard(prepared: PreparedCgroups): Promise<void> {
  await release(prepared.groups.map((g) => g.dir));
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

/** The processes in these cgroups now (their cgroup.procs), each once. */
export async function cgroupMembers(dirs: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const dir of dirs) {
    const text = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const line of text.split('\n')) if (line.trim()) pids.add(Number(line));
  }
  return [...pids];
}
