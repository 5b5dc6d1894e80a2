/**
 * The Runtime contract: Docker and process runtimes run this suite unchanged. It pins
 * what the lifecycle relies on: idempotent create/start/stop/remove by name, readiness
 * through the worker's health endpoint, ownership (an instance never sees or touches
 * another's workers), events for a worker killed from outside, logs (a tail, and a
 * followed stream that ends with the worker), CPU and memory stats, and adoption of
 * running workers by a new runtime instance (a router restart): every label comes back
 * and the worker answers the new instance about what it has loaded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LABELS, type Runtime, type RuntimeEvent, type WorkerSpec } from '../../src/runtime/runtime.js';
import { WorkerClient } from '../../src/runtime/worker-client.js';

export interface RuntimeFixture {
  /** A runtime for `instance`; calling it again gives a fresh instance (a restarted router). */
  make(instance: string): Promise<Runtime>;
  /** Kill a worker from outside, as a crash or an operator would. */
  killExternally(runtime: Runtime, name: string): Promise<void>;
  cleanup(instances: string[]): Promise<void>;
}

const limits = { memoryBytes: 512 * 1024 * 1024, nanoCpus: 1e9, pids: 128 };

function spec(instance: string, n: number): WorkerSpec {
  return {
    name: `${instance}-inf-${String(n).padStart(4, '0')}`,
    labels: {
      [LABELS.server]: `inf-${n}`,
      [LABELS.job]: `job-${n}`,
      [LABELS.model]: 'm-131',
      [LABELS.dataset]: 'ds-550',
      [LABELS.kind]: 'job',
    },
    limits,
  };
}

/** Collects events in the background; `next` waits for a matching one (no sleeps). */
function recordEvents(runtime: Runtime) {
  const abort = new AbortController();
  const seen: RuntimeEvent[] = [];
  const waiters: { match: (e: RuntimeEvent) => boolean; resolve: (e: RuntimeEvent) => void }[] = [];
  void (async () => {
    for await (const event of runtime.events(abort.signal)) {
      seen.push(event);
      for (const w of [...waiters]) {
        if (w.match(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    }
  })();
  return {
    stop: () => abort.abort(),
    next(match: (e: RuntimeEvent) => boolean, timeoutMs = 10_000): Promise<RuntimeEvent> {
      const already = seen.find(match);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event in ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ match, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
  };
}

export function runRuntimeContract(name: string, fixture: RuntimeFixture): void {
  describe(`Runtime contract: ${name}`, () => {
    const stamp = Date.now().toString(36);
    const instanceA = `rc${stamp}a`;
    const instanceB = `rc${stamp}b`;
    let runtime: Runtime;
    // The router's client: it sends each worker the secret its runtime reports.
    const workers = new WorkerClient({ secretOf: (endpoint) => runtime.workerSecret?.(endpoint) });
    let other: Runtime;
    let events: ReturnType<typeof recordEvents>;

    before(async () => {
      runtime = await fixture.make(instanceA);
      other = await fixture.make(instanceB);
      await runtime.prepare();
      events = recordEvents(runtime);
    });
    after(async () => {
      events?.stop();
      await workers.close();
      await runtime?.close();
      await other?.close();
      await fixture.cleanup([instanceA, instanceB]);
    });

    it('create is idempotent by name and carries our labels', async () => {
      const first = await runtime.create(spec(instanceA, 1));
      const again = await runtime.create(spec(instanceA, 1));
      assert.equal(again.id, first.id);
      assert.equal(first.running, false);
      assert.equal(first.labels[LABELS.managed], 'true');
      assert.equal(first.labels[LABELS.instance], instanceA);
      assert.equal(first.labels[LABELS.job], 'job-1');
      const inspected = await runtime.inspect(spec(instanceA, 1).name);
      assert.equal(inspected?.id, first.id);
      assert.equal(inspected?.labels[LABELS.instance], instanceA);
      assert.equal(inspected?.status, 'created');
      assert.equal(inspected?.endpoint, null);
    });

    it('refuses names that are not safe', async () => {
      await assert.rejects(runtime.create({ ...spec(instanceA, 1), name: 'Has Spaces' }));
      await assert.rejects(runtime.create({ ...spec(instanceA, 1), name: '-leading-dash' }));
    });

    it('start gives an endpoint whose readiness check answers; start is idempotent', async () => {
      const started = await runtime.start(spec(instanceA, 1).name);
      assert.equal(started.running, true);
      assert.ok(started.endpoint, 'an endpoint');
      await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
      const again = await runtime.start(spec(instanceA, 1).name);
      assert.equal(again.endpoint, started.endpoint);
      assert.equal(again.id, started.id);
      await events.next((e) => e.type === 'start' && e.name === started.name);
    });

    it('the worker it runs loads and serves a real model', async () => {
      const info = (await runtime.inspect(spec(instanceA, 1).name))!;
      await workers.load(info.endpoint!, 'job-1', 'm-131');
      assert.equal(await workers.isLoaded(info.endpoint!, 'job-1'), true);
    });

    it('the worker obeys only the secret its runtime reports (health checks stay open)', async () => {
      const info = (await runtime.inspect(spec(instanceA, 1).name))!;
      const secret = runtime.workerSecret?.(info.endpoint!);
      assert.ok(secret && secret.length >= 32, 'the runtime reports a secret for the endpoint');
      const open = new WorkerClient();
      try {
        await assert.rejects(open.index(info.endpoint!), /refused the router's secret/);
        await open.waitUntilReady(info.endpoint!, { timeoutMs: 5_000 });
      } finally {
        await open.close();
      }
      assert.equal(await workers.isLoaded(info.endpoint!, 'job-1'), true);
    });

    it('logs return what the worker printed', async () => {
      const logs = await runtime.logs(spec(instanceA, 1).name, { tail: 50 });
      assert.match(logs, /worker listening/);
    });

    it('openLogs without follow gives the last lines and ends', async () => {
      let text = '';
      for await (const chunk of await runtime.openLogs(spec(instanceA, 1).name, { tail: 50 })) text += chunk;
      assert.match(text, /worker listening/);
      let none = '';
      for await (const chunk of await runtime.openLogs(spec(instanceA, 1).name, { tail: 0 })) none += chunk;
      assert.equal(none, '', 'tail 0: no history');
    });

    it('stats measure a running worker: CPU time as a counter, resident memory, its limit', async () => {
      const name = spec(instanceA, 1).name;
      const first = await runtime.stats(name);
      assert.ok(first, 'a running worker has stats');
      // A Node.js worker with ONNX Runtime loaded and a model in memory.
      assert.ok(first.memoryBytes > 20 * 1024 * 1024, `memory ${first.memoryBytes}`);
      assert.ok(first.memoryBytes < limits.memoryBytes, `memory ${first.memoryBytes} under the limit`);
      assert.ok(first.cpuSeconds > 0, `cpu ${first.cpuSeconds}`);
      assert.ok(first.memoryLimitBytes === null || first.memoryLimitBytes === limits.memoryBytes);
      const info = (await runtime.inspect(name))!;
      await workers.load(info.endpoint!, 'job-1b', 'm-131');
      const second = await runtime.stats(name);
      assert.ok(second!.cpuSeconds >= first.cpuSeconds, 'the CPU counter never goes back');
      assert.ok(second!.time >= first.time);
      assert.equal(await other.stats(name), undefined, "another instance's worker");
      assert.equal(await runtime.stats('never-existed-inf-0001'), undefined);
    });

    it('lists only its own instance; another instance cannot touch its workers', async () => {
      await other.create(spec(instanceB, 7));
      const mine = (await runtime.list()).map((w) => w.name);
      const theirs = (await other.list()).map((w) => w.name);
      assert.ok(mine.includes(spec(instanceA, 1).name));
      assert.ok(!mine.includes(spec(instanceB, 7).name));
      assert.deepEqual(theirs, [spec(instanceB, 7).name]);
      assert.equal(await other.inspect(spec(instanceA, 1).name), undefined);
      assert.equal((await other.list()).length, 1);
      // To another instance our worker does not exist: stop/remove are no-ops, the rest refuse.
      await other.stop(spec(instanceA, 1).name, { timeoutSeconds: 1 });
      await other.remove(spec(instanceA, 1).name);
      await assert.rejects(other.start(spec(instanceA, 1).name));
      await assert.rejects(other.logs(spec(instanceA, 1).name));
      await assert.rejects(other.openLogs(spec(instanceA, 1).name, { follow: true }));
      const untouched = await runtime.inspect(spec(instanceA, 1).name);
      assert.equal(untouched?.running, true, 'untouched');
      assert.equal(untouched?.labels[LABELS.instance], instanceA);
    });

    it('a new runtime instance adopts running workers (router restart)', async () => {
      const name = spec(instanceA, 3).name;
      await runtime.create(spec(instanceA, 3));
      const started = await runtime.start(name);
      await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
      // (The event stream is surely connected by now, unlike at the very first create.)
      await events.next((e) => e.type === 'create' && e.name === name);
      await workers.load(started.endpoint!, 'job-3', 'm-131');
      const restarted = await fixture.make(instanceA);
      // A router that lost its records rebuilds them from what this new runtime lists:
      // every label it gave the worker, and the worker's own answer about what it loaded.
      const restartedClient = new WorkerClient({
        secretOf: (endpoint) => restarted.workerSecret?.(endpoint),
      });
      try {
        const listed = (await restarted.list()).find((w) => w.name === name);
        assert.equal(listed?.running, true);
        assert.equal(listed?.id, started.id, 'the same worker, not a new one');
        assert.equal(listed?.endpoint, started.endpoint);
        for (const [key, value] of Object.entries(spec(instanceA, 3).labels)) {
          assert.equal(listed?.labels[key], value, key);
        }
        assert.ok(
          await restartedClient.isLoaded(listed!.endpoint!, 'job-3'),
          'its loaded model, asked through the new runtime',
        );
        const adopted = await restarted.inspect(spec(instanceA, 1).name);
        assert.equal(adopted?.running, true);
        // The adopting runtime can stop what an earlier one started.
        await restarted.stop(name, { timeoutSeconds: 10 });
        assert.equal((await restarted.inspect(name))?.running, false);
        assert.equal((await runtime.inspect(name))?.running, false);
        await events.next((e) => e.type === 'die' && e.name === name);
        await restarted.remove(name);
        assert.equal(await runtime.inspect(name), undefined);
      } finally {
        await restartedClient.close();
        await restarted.close();
      }
    });

    it("a shared worker: no job of its own, several jobs' models by name, found again and reported by name when it dies", async () => {
      // What shared placement (src/lifecycle/shared-fleet.ts) relies on: a worker labelled
      // only as shared, hosting models under their jobs' names, each unloaded alone.
      const name = `${instanceA}-shared-0005`;
      await runtime.create({ name, labels: { [LABELS.kind]: 'shared' }, limits });
      const started = await runtime.start(name);
      await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
      const endpoint = started.endpoint!;
      await Promise.all(['sa', 'sb', 'sc'].map((job) => workers.load(endpoint, job, 'm-131')));
      await workers.unload(endpoint, 'sb');
      const ready = (await workers.index(endpoint)).filter((e) => e.state === 'READY').map((e) => e.name);
      assert.deepEqual(ready.sort(), ['sa', 'sc'], 'unloading one job leaves the others');
      const restarted = await fixture.make(instanceA);
      try {
        const listed = (await restarted.list()).find((w) => w.name === name);
        assert.equal(listed?.running, true);
        assert.equal(listed?.labels[LABELS.kind], 'shared');
        assert.equal(listed?.labels[LABELS.job], undefined, 'no job label');
        assert.equal(listed?.endpoint, endpoint);
      } finally {
        await restarted.close();
      }
      await fixture.killExternally(runtime, name);
      const died = await events.next((e) => e.type === 'die' && e.name === name);
      assert.equal(died.labels[LABELS.kind], 'shared');
      assert.equal((await runtime.inspect(name))?.running, false);
      await runtime.remove(name);
      assert.equal(await runtime.inspect(name), undefined);
    });

    it('a worker killed from outside is reported by a die event and inspect', async () => {
      const name = spec(instanceA, 1).name;
      await fixture.killExternally(runtime, name);
      const died = await events.next((e) => e.type === 'die' && e.name === name);
      assert.equal(died.labels[LABELS.job], 'job-1');
      assert.equal(died.exitCode, 137, 'killed by SIGKILL: 128 + 9');
      const info = await runtime.inspect(name);
      assert.equal(info?.running, false);
      assert.equal(info?.status, 'exited');
      assert.equal(info?.endpoint, null);
      assert.equal(info?.exitCode, 137);
      // A dead worker can be started again under the same name.
      const again = await runtime.start(name);
      assert.equal(again.running, true);
      await workers.waitUntilReady(again.endpoint!, { timeoutMs: 30_000 });
    });

    it('rename: a running worker goes on under the new name only (the warm pool hands workers over so), its death reported by that name', async () => {
      assert.ok(runtime.rename, 'every runtime can hand a worker over');
      const name = spec(instanceA, 5).name;
      const renamedName = spec(instanceA, 6).name;
      await runtime.create(spec(instanceA, 5));
      const started = await runtime.start(name);
      await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
      const renamed = await runtime.rename(name, renamedName);
      assert.equal(renamed.name, renamedName);
      assert.equal(renamed.id, started.id, 'the same running worker');
      assert.equal(renamed.endpoint, started.endpoint);
      assert.equal(await runtime.inspect(name), undefined, 'gone under its old name');
      assert.deepEqual(
        (await runtime.list()).filter((w) => w.name === name || w.name === renamedName).map((w) => w.name),
        [renamedName],
      );
      await workers.waitUntilReady(renamed.endpoint!, { timeoutMs: 30_000 });
      await fixture.killExternally(runtime, renamedName);
      await events.next((e) => e.type === 'die' && e.name === renamedName);
      assert.equal((await runtime.inspect(renamedName))?.running, false);
      await runtime.remove(renamedName);
      assert.equal(await runtime.inspect(renamedName), undefined);
    });

    it('openLogs with follow passes on what the worker prints next and ends when it stops', async () => {
      const name = spec(instanceA, 4).name;
      await runtime.create(spec(instanceA, 4));
      const started = await runtime.start(name);
      await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
      const abort = new AbortController();
      const stream = await runtime.openLogs(name, { tail: 20, follow: true, signal: abort.signal });
      let text = '';
      let stopping: Promise<void> | undefined;
      try {
        for await (const chunk of stream) {
          text += chunk;
          // Stop the worker once the history is in: its shutdown line must follow, then the end.
          if (!stopping && /worker listening/.test(text)) {
            stopping = runtime.stop(name, { timeoutSeconds: 10 });
          }
        }
      } finally {
        abort.abort();
      }
      await stopping;
      assert.match(text, /worker listening[\s\S]*worker stopping/);
      assert.equal((await runtime.inspect(name))?.running, false);
      assert.equal(await runtime.stats(name), undefined, 'a stopped worker has no stats');
      await runtime.remove(name);
    });

    it('openLogs with follow ends when the signal aborts', async () => {
      const name = spec(instanceA, 1).name;
      const abort = new AbortController();
      const stream = await runtime.openLogs(name, { tail: 1, follow: true, signal: abort.signal });
      let chunks = 0;
      for await (const chunk of stream) {
        assert.ok(chunk.length > 0);
        chunks++;
        abort.abort();
      }
      // Reaching this line is the test: a stream that ignored the abort would never end.
      assert.ok(chunks >= 1, 'the history came first');
    });

    it('stop and remove are idempotent; a removed worker is gone', async () => {
      const name = spec(instanceA, 2).name;
      await runtime.create(spec(instanceA, 2));
      const started = await runtime.start(name);
      await workers.waitUntilReady(started.endpoint!, { timeoutMs: 30_000 });
      await runtime.stop(name, { timeoutSeconds: 5 });
      assert.equal((await runtime.inspect(name))?.running, false);
      await runtime.stop(name, { timeoutSeconds: 5 });
      await runtime.remove(name);
      await runtime.remove(name);
      assert.equal(await runtime.inspect(name), undefined);
      await events.next((e) => e.type === 'destroy' && e.name === name);
      await runtime.stop('never-existed-inf-0001');
      await runtime.remove('never-existed-inf-0001');
    });
  });
}
