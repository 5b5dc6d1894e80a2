import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { processStartTime } from '../../src/runtime/process/proc.js';
import {
  ProcessRuntime,
  type WorkerCommand,
  type WorkerState,
} from '../../src/runtime/process/process-runtime.js';
import { LABELS, type RuntimeEvent, type WorkerInfo, type WorkerSpec } from '../../src/runtime/runtime.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';
import { DATASETS_DIR, MODELS_DIR, REPO_ROOT } from '../helpers/paths.js';
import { runRuntimeContract } from './runtime.contract.js';

/** The stop's grace period before SIGKILL in the adoption test. */
const STOP_GRACE_SECONDS = 120;

const stateDir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-process-runtime-'));
const make = (instance: string) =>
  new ProcessRuntime({ instance, stateDir, modelsDir: MODELS_DIR, datasetsDir: DATASETS_DIR });

runRuntimeContract('process', {
  make: async (instance) => make(instance),
  killExternally: async (runtime, name) => {
    // From outside, as a crash or an operator would: the pid from the runtime id.
    const info = await runtime.inspect(name);
    const pid = Number(/^pid:(\d+):/.exec(info?.id ?? '')?.[1]);
    if (!pid) throw new Error(`${name} is not running (id ${info?.id})`);
    process.kill(pid, 'SIGKILL');
  },
  cleanup: async (instances) => {
    for (const instance of instances) {
      const runtime = make(instance);
      for (const worker of await runtime.list()) await runtime.remove(worker.name);
      await runtime.close();
    }
    await rm(stateDir, { recursive: true, force: true });
  },
});

/** What only the process runtime has to guarantee: surviving the router, pids, limits. */
describe('ProcessRuntime specifics', () => {
  const instance = `rp${Date.now().toString(36)}`;
  const limits = { memoryBytes: 1024 * 1024 * 1024, nanoCpus: 1e9, pids: 256 };
  let dir: string;
  const opened: ProcessRuntime[] = [];
  const workers = new WorkerClient({
    secretOf: (endpoint) => opened.map((r) => r.workerSecret(endpoint)).find((s) => s !== undefined),
  });
  const runtimeFor = (workerCommand?: WorkerCommand) => {
    const runtime = new ProcessRuntime({
      instance,
      stateDir: dir,
      modelsDir: MODELS_DIR,
      datasetsDir: DATASETS_DIR,
      ...(workerCommand ? { workerCommand } : {}),
    });
    opened.push(runtime);
    return runtime;
  };
  const fixture = (file: string): WorkerCommand => ({
    command: process.execPath,
    args: [path.join(REPO_ROOT, 'test/fixtures/process-runtime', file)],
  });
  const pidOf = (info: WorkerInfo | undefined) => Number(/^pid:(\d+):/.exec(info?.id ?? '')?.[1]);
  const readState = async (name: string) =>
    JSON.parse(await readFile(path.join(dir, instance, `${name}.json`), 'utf8')) as WorkerState;
  const spec = (n: number, overrides: Partial<WorkerSpec> = {}): WorkerSpec => ({
    name: `${instance}-inf-${String(n).padStart(4, '0')}`,
    labels: { [LABELS.server]: `inf-${n}`, [LABELS.job]: `job-${n}` },
    limits,
    ...overrides,
  });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-process-specifics-'));
  });
  after(async () => {
    await workers.close();
    const runtime = runtimeFor();
    for (const worker of await runtime.list()) await runtime.remove(worker.name);
    for (const r of opened) await r.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a worker outlives the router process that started it and is adopted by the next', async () => {
    const name = spec(1).name;
    const router = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(REPO_ROOT, 'test/fixtures/process-runtime/start-worker-and-exit.ts'),
        dir,
        instance,
        name,
        MODELS_DIR,
        DATASETS_DIR,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let output = '';
    router.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(router, 'exit')) as [number | null];
    assert.equal(code, 0, 'the first router exited');
    const started = JSON.parse(output) as WorkerInfo;
    assert.equal(started.running, true);

    const next = runtimeFor();
    const adopted = (await next.list()).find((w) => w.name === name);
    assert.equal(adopted?.running, true);
    assert.equal(adopted?.id, started.id, 'same pid and start time');
    assert.equal(adopted?.endpoint, started.endpoint);
    await workers.waitUntilReady(adopted.endpoint!, { timeoutMs: 30_000 });
    // Its own process group, so signals meant for the router's group never reach it.
    const pid = pidOf(adopted);
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    assert.equal(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]), pid, 'process group leader');

    const abort = new AbortController();
    const died = (async () => {
      for await (const event of next.events(abort.signal)) if (event.type === 'die') return event;
    })();
    // SIGKILL would come only after the grace period: returning well before it means the
    // worker exited on SIGTERM (a generous period, so a busy machine cannot fake a failure).
    const began = Date.now();
    await next.stop(name, { timeoutSeconds: STOP_GRACE_SECONDS });
    const took = Date.now() - began;
    assert.ok(
      took < (STOP_GRACE_SECONDS - 10) * 1000,
      `the worker exits on SIGTERM, no SIGKILL needed (${took} ms)`,
    );
    assert.equal((await died)?.name, name);
    abort.abort();
    assert.equal(await processStartTime(pid), undefined, 'the process is gone');
    const stopped = await next.inspect(name);
    assert.equal(stopped?.running, false);
    assert.equal(stopped?.status, 'exited');
    await next.close();
  });

  it('an adopted worker that dies is noticed by the /proc watch', async () => {
    const first = runtimeFor();
    await first.create(spec(2));
    const started = await first.start(spec(2).name);
    await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
    await first.close();
    const next = runtimeFor();
    const abort = new AbortController();
    const died = (async () => {
      for await (const event of next.events(abort.signal)) {
        if (event.type === 'die' && event.name === spec(2).name) return event;
      }
    })();
    process.kill(pidOf(started), 'SIGKILL');
    const event = await died;
    abort.abort();
    assert.equal(event?.labels[LABELS.job], 'job-2');
    const info = await next.inspect(spec(2).name);
    assert.equal(info?.running, false);
    assert.equal(info?.exitCode, null, 'not our child: its exit code is unknowable');
    assert.match(info?.error ?? '', /not watching/);
    await next.close();
  });

  it('never signals a process that merely reuses a recorded pid', async () => {
    const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const startTime = await processStartTime(bystander.pid!);
      assert.ok(startTime);
      const name = spec(3).name;
      await mkdir(path.join(dir, instance), { recursive: true });
      const forged: WorkerState = {
        name,
        labels: { [LABELS.managed]: 'true', [LABELS.instance]: instance, [LABELS.job]: 'job-3' },
        limits,
        env: {},
        status: 'running',
        port: 1,
        pid: bystander.pid!,
        startTime: String(Number(startTime) - 1),
        exitCode: null,
        error: null,
        enforcedLimits: [],
        createdAt: new Date().toISOString(),
        startedAt: new Date().toISOString(),
        finishedAt: null,
      };
      await writeFile(path.join(dir, instance, `${name}.json`), JSON.stringify(forged));
      const runtime = runtimeFor();
      const abort = new AbortController();
      const died = (async () => {
        for await (const event of runtime.events(abort.signal))
          if (event.name === name && event.type === 'die') return event;
      })();
      const info = await runtime.inspect(name);
      assert.equal(info?.running, false, 'not ours');
      assert.equal(info?.endpoint, null);
      assert.equal(info?.id, `process:${name}`);
      await died; // the /proc watch records it as gone (without signalling anything)
      abort.abort();
      await runtime.stop(name, { timeoutSeconds: 1 });
      await runtime.kill(name);
      await runtime.remove(name);
      assert.equal(await runtime.inspect(name), undefined);
      await runtime.close();
      assert.equal(bystander.exitCode, null);
      assert.equal(bystander.signalCode, null);
      assert.equal(await processStartTime(bystander.pid!), startTime, 'still alive');
    } finally {
      bystander.kill();
    }
  });

  it('reads start times right even for a command name with spaces and parentheses', async () => {
    // /proc/<pid>/stat puts the command name in parentheses; a naive split would shift fields.
    const odd = path.join(dir, 'odd) name (x');
    await symlink('/bin/sleep', odd);
    const reference = spawn('sleep', ['30'], { stdio: 'ignore' });
    const oddly = spawn(odd, ['30'], { stdio: 'ignore' });
    try {
      const [a, b] = await Promise.all([processStartTime(reference.pid!), processStartTime(oddly.pid!)]);
      assert.match(a ?? '', /^\d+$/);
      assert.match(b ?? '', /^\d+$/);
      // Started moments apart: close in clock ticks (10 s here, for a busy machine), where a
      // field read one place off would be another quantity altogether.
      assert.ok(Math.abs(Number(a) - Number(b)) <= 1_000, `${a} vs ${b}`);
    } finally {
      reference.kill();
      oddly.kill();
    }
  });

  it('ignores state files that do not belong to this instance', async () => {
    const name = spec(4).name;
    await mkdir(path.join(dir, instance), { recursive: true });
    await writeFile(
      path.join(dir, instance, `${name}.json`),
      JSON.stringify({ name, labels: { [LABELS.managed]: 'true', [LABELS.instance]: 'someone-else' } }),
    );
    const runtime = runtimeFor();
    assert.equal(await runtime.inspect(name), undefined);
    assert.ok(!(await runtime.list()).some((w) => w.name === name));
    await assert.rejects(runtime.start(name));
    await rm(path.join(dir, instance, `${name}.json`));
    await runtime.close();
  });

  it('concurrent starts of one worker start one process', async () => {
    const runtime = runtimeFor();
    await runtime.create(spec(5));
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => runtime.start(spec(5).name)));
    assert.equal(a!.id, b!.id);
    assert.equal(b!.id, c!.id);
    await workers.waitUntilReady(a!.endpoint!, { timeoutMs: 30_000 });
    await runtime.remove(spec(5).name);
    assert.equal(await processStartTime(pidOf(a)), undefined);
    await runtime.close();
  });

  it('a worker stays inspectable while two runtime objects record its exit at once', async () => {
    // Two routers of one instance in one process (a restarted router, as in tests) both
    // stop the worker: each records the exit. A reader in between must always find the
    // worker's state file whole (it once shared one temporary file and saw it half-written).
    const first = runtimeFor();
    const second = runtimeFor();
    const name = spec(9).name;
    await first.create(spec(9));
    const missing: number[] = [];
    for (let round = 0; round < 8; round++) {
      const started = await first.start(name);
      await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
      let stopping = true;
      const reader = (async () => {
        while (stopping) if ((await second.inspect(name)) === undefined) missing.push(round);
      })();
      await Promise.all([first.stop(name, { timeoutSeconds: 5 }), second.stop(name, { timeoutSeconds: 5 })]);
      stopping = false;
      await reader;
      assert.equal((await first.inspect(name))?.running, false);
      assert.equal((await second.inspect(name))?.running, false);
    }
    assert.deepEqual(missing, [], 'rounds in which the state file could not be read');
    await first.remove(name);
    await first.close();
    await second.close();
  });

  it('stop escalates to SIGKILL when a worker ignores SIGTERM', async () => {
    const runtime = runtimeFor(fixture('stubborn-worker.mjs'));
    await runtime.create(spec(6));
    const started = await runtime.start(spec(6).name);
    await workers.waitUntilReady(started.endpoint!, { timeoutMs: 10_000 });
    const began = Date.now();
    await runtime.stop(spec(6).name, { timeoutSeconds: 1 });
    const took = Date.now() - began;
    // Not before the grace period; and it ends (a stop that never escalated would not).
    assert.ok(took >= 1_000, `stopped after the 1 s grace period (${took} ms)`);
    const info = await runtime.inspect(spec(6).name);
    assert.equal(info?.running, false);
    assert.equal(info?.exitCode, 137);
    assert.match(await runtime.logs(spec(6).name), /ignores SIGTERM/);
    await runtime.remove(spec(6).name);
    await runtime.close();
  });

  it('enforces the memory limit where cgroups allow it, and says so where not', async () => {
    const runtime = runtimeFor(fixture('memory-hog.mjs'));
    const name = spec(7).name;
    await runtime.create(spec(7, { limits: { ...limits, memoryBytes: 128 * 1024 * 1024 } }));
    const abort = new AbortController();
    const seen: RuntimeEvent[] = [];
    const died = (async () => {
      for await (const event of runtime.events(abort.signal)) {
        if (event.name !== name) continue;
        seen.push(event);
        if (event.type === 'die') return event;
      }
    })();
    await runtime.start(name);
    const enforced = (await readState(name)).enforcedLimits;
    if (process.getuid?.() === 0 && existsSync('/sys/fs/cgroup/memory')) {
      // Root on a cgroup v1 machine (like CI here): the kernel must enforce it.
      assert.ok(enforced.includes('memory'), `memory enforced (got ${enforced.join(',')})`);
    }
    const event = await died;
    abort.abort();
    const info = await runtime.inspect(name);
    if (enforced.includes('memory')) {
      assert.equal(event?.exitCode, 137);
      assert.deepEqual(
        seen.map((e) => e.type),
        ['start', 'oom', 'die'],
      );
      assert.equal(info?.oomKilled, true);
      assert.match(info?.error ?? '', /OOM/);
    } else {
      assert.equal(info?.oomKilled, false);
      assert.match(await runtime.logs(name), /never stopped/);
    }
    await runtime.remove(name);
    await runtime.close();
  });
});
