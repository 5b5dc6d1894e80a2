/**
 * The guard's own answer to /v2/worker/stats (src/worker/guard-stats.ts): what a runtime
 * without a metrics API (Kubernetes) reads as a foreign server's memory and CPU. It counts
 * the guard and every process it started, as the process runtime counts a worker.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { guardStats } from '../../src/worker/guard-stats.js';

const MIB = 2 ** 20;

describe('guard stats', () => {
  it('count the processes the guard started: a child holding 96 MiB shows, and is gone with it', async () => {
    const alone = await guardStats('w1');
    assert.equal(alone.name, 'w1');
    assert.equal(alone.memory_source, 'rss');
    assert.equal(alone.memory_bytes, alone.rss_bytes);
    assert.ok(alone.rss_bytes >= process.memoryUsage.rss() / 2, 'at least the guard itself');
    assert.ok(alone.cpu_seconds > 0);

    // A "server" that touches 96 MiB (resident, not just reserved) and says so.
    const server = spawn(
      process.execPath,
      [
        '-e',
        'globalThis.held = Buffer.alloc(96 * 2 ** 20, 1); console.log("ready"); setInterval(() => {}, 1000)',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await once(server.stdout!, 'data');
      const withServer = await guardStats('w1');
      assert.ok(
        withServer.rss_bytes - alone.rss_bytes > 80 * MIB,
        `the server's memory is counted: ${Math.round(alone.rss_bytes / MIB)} MiB alone, ${Math.round(withServer.rss_bytes / MIB)} MiB with it`,
      );
    } finally {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
    const after = await guardStats('w1');
    assert.ok(after.rss_bytes - alone.rss_bytes < 48 * MIB, 'a server that is gone is not counted');
  });
});
