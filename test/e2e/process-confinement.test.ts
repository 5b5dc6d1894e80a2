/**
 * Process-runtime confinement (issue #17): a worker is in its cgroups before it runs a
 * single instruction of its own, its groups sit under a `modeldock` group (never at the
 * hierarchy root), swap is bounded on cgroup v1 where the kernel offers it, and it gets
 * its secret and body limit in its environment.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProcessRuntime } from '../../src/runtime/process/process-runtime.js';
import { DATASETS_DIR, MODELS_DIR } from '../helpers/paths.js';
import { uniqueInstance } from '../helpers/router.js';

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
    if (!root || !v1) {
      ctx.diagnostic('not root on cgroup v1: placement is best effort here');
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
