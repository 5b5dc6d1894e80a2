/**
 * Process-runtime confinement (issue #17): a worker is in its cgroups before it runs a
 * single instruction of its own, its groups sit under a `modeldock` group (never at the
 * hierarchy root), swap is bounded on cgroup v1 where the kernel offers it, and it gets
 * its secret and body limit in its environment.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  commandInCgroups,
  PARENT_GROUP,
  prepareCgroups,
  release,
  verifyPlacement,
  type EnforcedLimit,
} from '../../src/runtime/process/cgroup.js';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { uniqueInstance } from '../helpers/router.js';

const run = promisify(execFile);
const limits = { memoryBytes: 256 * 1024 * 1024, nanoCpus: 1e9, pids: 64 };
const v1 = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');
const root = process.getuid?.() === 0;

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

/**
 * On cgroup v2: the worker's one `0::` line names its group under a modeldock group, and
 * each limit the runtime claims is in that group's files. Returns the limits not claimed.
 */
async function assertOnV2(
  text: string,
  state: { enforcedLimits: string[]; cgroups: string[] },
  group: string,
): Promise<string[]> {
  const line = text.split('\n').find((l) => l.startsWith('0::'));
  assert.ok(line, `no cgroup v2 line in ${text}`);
  const placed = line.slice('0::'.length);
  assert.ok(placed.endsWith(`/${PARENT_GROUP}/${group}`), `placed in ${placed}`);
  assert.notEqual(path.dirname(placed), '/', 'never at the hierarchy root');
  assert.equal(state.cgroups.length, 1, 'one group on v2');
  const dir = state.cgroups[0]!;
  const expected: Record<string, [string, string]> = {
    memory: ['memory.max', String(limits.memoryBytes)],
    swap: ['memory.swap.max', '0'],
    pids: ['pids.max', String(limits.pids)],
    cpu: ['cpu.max', '100000 100000'],
  };
  for (const limit of state.enforcedLimits) {
    const [file, value] = expected[limit]!;
    assert.equal((await readFile(path.join(dir, file), 'utf8')).trim(), value, `${limit} in ${file}`);
  }
  return Object.keys(expected).filter((limit) => !state.enforcedLimits.includes(limit));
}

describe('process runtime: confinement', () => {
  let stateDir: string;
  const instance = uniqueInstance('conf');
  let runtime: ProcessRuntime;
  before(async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-conf-'));
    // A "worker" that reports where it is at its very first instruction, then waits.
    runtime = new ProcessRuntime({
      instance,
      stateDir,
      modelsDir: MODELS_DIR,
      datasetsDir: DATASETS_DIR,
      workerCommand: {
        command: '/bin/sh',
        args: [
          '-c',
          'cat /proc/self/cgroup; echo "secret=${MODELDOCK_WORKER_SECRET:+set}"; echo "limit=$MODELDOCK_WORKER_BODY_LIMIT"; exec sleep 60',
        ],
      },
    });
  });
  after(async () => {
    for (const worker of await runtime.list()) await runtime.remove(worker.name);
    await runtime.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('the worker is in its own cgroups under a modeldock group from its first instruction', async (ctx) => {
    const name = `${instance}-w1`;
    await runtime.create({ name, labels: {}, limits });
    await runtime.start(name);
    const log = path.join(stateDir, instance, `${name}.log`);
    const text = await until(async () => {
      const content = await readFile(log, 'utf8').catch(() => '');
      return content.includes('limit=') ? content : undefined;
    }, 'the worker to report');
    ctx.diagnostic(text);
    const state = JSON.parse(await readFile(path.join(stateDir, instance, `${name}.json`), 'utf8'));
    assert.match(text, /secret=set/, 'the runtime always passes a secret');
    assert.match(text, /limit=\d+/, 'the runtime passes a body limit');
    if (!root) {
      // Nothing to verify the placement with; what can fail is a claim the kernel does not back.
      assert.deepEqual(state.enforcedLimits, [], 'not root: no limit is claimed as enforced');
      ctx.diagnostic('NOT CHECKED: not root, so cgroup placement and limits were not verified');
      return;
    }
    if (!v1) {
      const unclaimed = await assertOnV2(text, state, `${instance}-${name}`);
      ctx.diagnostic(
        `cgroup v2: placement checked; limits not enforced here, so not checked: ${unclaimed.join(', ') || 'none'}`,
      );
      return;
    }
    const groups = new Map(
      text
        .split('\n')
        .map((line) => /^\d+:([^:]*):(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .flatMap((m) => m[1]!.split(',').map((c) => [c, m[2]!] as const)),
    );
    for (const controller of state.enforcedLimits.filter((l: string) => l !== 'swap')) {
      const group = groups.get(controller);
      assert.ok(group, `no ${controller} line in ${text}`);
      assert.match(
        group,
        new RegExp(`/modeldock/${instance}-${name}$`),
        `${controller} at its first instruction`,
      );
      assert.notEqual(path.dirname(group), '/', 'never at the hierarchy root');
    }
    assert.ok(state.enforcedLimits.includes('memory'), `memory enforced: ${state.enforcedLimits}`);
    const memoryDir = state.cgroups.find((d: string) => d.startsWith('/sys/fs/cgroup/memory/'));
    if (existsSync(path.join(memoryDir, 'memory.memsw.limit_in_bytes'))) {
      assert.ok(state.enforcedLimits.includes('swap'), `swap bounded: ${state.enforcedLimits}`);
      assert.equal(
        Number(await readFile(path.join(memoryDir, 'memory.memsw.limit_in_bytes'), 'utf8')),
        limits.memoryBytes,
      );
    }
  });
});

/**
 * The cgroup v2 code on a cgroup2 hierarchy, wherever the machine's own cgroups are v1:
 * the test mounts the unified hierarchy itself when /sys/fs/cgroup is not one. A worker's
 * stand-in joins its group from its first instruction, and the limits reported enforced
 * are exactly the ones whose controllers the hierarchy offers.
 */
describe('process runtime: cgroup v2', () => {
  const group = `${uniqueInstance('v2')}-w1`;
  let root = '/sys/fs/cgroup';
  let mounted: string | undefined;
  let child: ChildProcess | undefined;
  let dirs: string[] = [];
  before(async () => {
    if (existsSync('/sys/fs/cgroup/cgroup.controllers') || process.getuid?.() !== 0) return;
    mounted = await mkdtemp(path.join(os.tmpdir(), 'modeldock-cgroup2-'));
    await run('mount', ['-t', 'cgroup2', 'none', mounted]);
    root = mounted;
  });
  after(async () => {
    child?.kill('SIGKILL');
    if (child && child.exitCode === null) await once(child, 'exit');
    await release(dirs);
    // The modeldock group too, unless a worker of someone else's is in it.
    for (const dir of dirs) await rmdir(path.dirname(dir)).catch(() => undefined);
    if (mounted) {
      await run('umount', [mounted]);
      await rm(mounted, { recursive: true, force: true });
    }
  });

  it('places the worker in its group under a modeldock group and claims only the limits the hierarchy offers', async (ctx) => {
    const prepared = await prepareCgroups(group, limits, root);
    if (process.getuid?.() !== 0) {
      assert.deepEqual(prepared.groups, [], 'not root: no group');
      assert.ok(prepared.problems.length > 0, 'and the reason is given');
      ctx.diagnostic(`NOT CHECKED: not root, so no cgroup2 placement: ${prepared.problems.join('; ')}`);
      return;
    }
    assert.equal(prepared.groups.length, 1, prepared.problems.join('; '));
    const { command, args } = commandInCgroups(prepared, '/bin/sh', [
      '-c',
      'cat /proc/self/cgroup; exec sleep 60',
    ]);
    child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const firstLines = once(child.stdout!, 'data').then(([chunk]) => String(chunk));
    const placement = await verifyPlacement(child.pid!, prepared);
    dirs = placement.dirs;
    const line = (await firstLines).split('\n').find((l) => l.startsWith('0::'));
    assert.ok(line?.endsWith(`/${PARENT_GROUP}/${group}`), `at its first instruction: ${line}`);
    assert.deepEqual(placement.dirs, [prepared.groups[0]!.dir]);

    const offered = (await readFile(path.join(root, 'cgroup.controllers'), 'utf8')).trim().split(/\s+/);
    const dir = placement.dirs[0]!;
    const files: [EnforcedLimit, string, string][] = [
      ['memory', 'memory.max', String(limits.memoryBytes)],
      ['pids', 'pids.max', String(limits.pids)],
      ['cpu', 'cpu.max', '100000 100000'],
    ];
    for (const [limit, file, value] of files) {
      if (!offered.includes(limit)) {
        assert.ok(!placement.enforced.includes(limit), `${limit} is not offered, so not claimed`);
        ctx.diagnostic(
          `NOT CHECKED: the ${limit} limit (this cgroup2 hierarchy offers no ${limit} controller: ${offered.join(' ') || 'none'})`,
        );
        continue;
      }
      assert.ok(placement.enforced.includes(limit), `${limit} is offered, so enforced`);
      assert.equal((await readFile(path.join(dir, file), 'utf8')).trim(), value, file);
    }
  });
});
