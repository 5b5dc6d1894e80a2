/**
 * What only the SQLite store has to prove: several processes (routers) sharing one file
 * never get the same server number, and a file that cannot be used now (locked beyond
 * the busy timeout, not a database, in a directory that cannot exist, newer schema) is
 * StoreUnavailableError, so the API answers 503 instead of 500.
 *
 * Run as a child (MODELDOCK_TEST_ALLOCATE_FILE set) this file only allocates numbers
 * and prints them, one JSON array on stdout.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StoreUnavailableError } from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const CHILD_FILE = process.env.MODELDOCK_TEST_ALLOCATE_FILE;
const PER_PROCESS = 500;

if (CHILD_FILE) {
  const store = new SqliteStore(CHILD_FILE);
  await store.init();
  // A barrier, so the processes really allocate at the same time: ready, then wait for go.
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  const numbers: number[] = [];
  for (let i = 0; i < PER_PROCESS; i++) numbers.push(await store.allocateServerNumber());
  await store.close();
  process.stdout.write(JSON.stringify(numbers) + '\n');
  process.stdin.destroy();
} else {
  describe('SQLite store: one file shared by several processes, and unusable files', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-sqlite-sharing-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** Children that open the file, then allocate when told to; resolves once all are ready. */
    async function startAllocators(file: string, count: number) {
      const children = Array.from({ length: count }, () =>
        spawn(process.execPath, ['--import', 'tsx', import.meta.filename], {
          env: { ...process.env, MODELDOCK_TEST_ALLOCATE_FILE: file },
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      );
      const outputs = children.map((child) => {
        const lines: string[] = [];
        let buffered = '';
        const ready = new Promise<void>((resolve, reject) => {
          child.stdout.on('data', (chunk: Buffer) => {
            buffered += chunk.toString();
            const parts = buffered.split('\n');
            buffered = parts.pop()!;
            for (const line of parts) {
              lines.push(line);
              if (line === 'ready') resolve();
            }
          });
          child.on('exit', (code) => reject(new Error(`allocator exited ${code} before it was ready`)));
        });
        const done = new Promise<number[]>((resolve, reject) => {
          child.on('error', reject);
          child.on('exit', (code) =>
            code === 0
              ? resolve(JSON.parse(lines.at(-1)!) as number[])
              : reject(new Error(`allocator exited ${code}`)),
          );
        });
        return { ready, done };
      });
      await Promise.all(outputs.map((o) => o.ready));
      return {
        go: () => {
          for (const child of children) child.stdin.write('go\n');
          return Promise.all(outputs.map((o) => o.done));
        },
      };
    }

    it('three processes allocating at once never get the same number, and none is skipped', async () => {
      const file = path.join(dir, 'shared.db');
      const allocators = await startAllocators(file, 3);
      const results = await allocators.go();
      const all = results.flat();
      assert.equal(all.length, 3 * PER_PROCESS);
      assert.equal(new Set(all).size, all.length, 'all distinct');
      assert.deepEqual(
        [...all].sort((a, b) => a - b),
        Array.from({ length: all.length }, (_, i) => i + 1),
      );
      for (const numbers of results) {
        assert.deepEqual(
          numbers,
          [...numbers].sort((a, b) => a - b),
          'each process sees them rising',
        );
      }
    });

    it('a write lock held beyond the busy timeout is StoreUnavailableError; the call works once released', async () => {
      const file = path.join(dir, 'locked.db');
      const store = new SqliteStore(file, { busyTimeoutMs: 100 });
      await store.init();
      const other = new Database(file);
      try {
        other.exec('BEGIN IMMEDIATE');
        await assert.rejects(store.allocateServerNumber(), (error: unknown) => {
          assert.ok(error instanceof StoreUnavailableError, String(error));
          assert.match(error.message, /SQLite store unavailable .*locked\.db.*(busy|locked)/i);
          return true;
        });
        other.exec('COMMIT');
        assert.equal(await store.allocateServerNumber(), 1);
      } finally {
        other.close();
        await store.close();
      }
    });

    it('a file that is not a database is StoreUnavailableError', async () => {
      const file = path.join(dir, 'garbage.db');
      await writeFile(file, 'this is not a SQLite database, but it is long enough to look at.'.repeat(20));
      await assert.rejects(new SqliteStore(file).init(), StoreUnavailableError);
    });

    it('a path whose directory cannot be created is StoreUnavailableError', async () => {
      const notADirectory = path.join(dir, 'plain-file');
      await writeFile(notADirectory, 'x');
      await assert.rejects(
        new SqliteStore(path.join(notADirectory, 'modeldock.db')).init(),
        (error: unknown) => {
          assert.ok(error instanceof StoreUnavailableError, String(error));
          assert.match(error.message, /plain-file/);
          return true;
        },
      );
    });

    it('a database written by a newer modeldock is refused, not misread', async () => {
      const file = path.join(dir, 'newer.db');
      const store = new SqliteStore(file);
      await store.init();
      await store.close();
      const raw = new Database(file);
      raw.prepare("UPDATE meta SET value = '999' WHERE key = 'schema_version'").run();
      raw.close();
      await assert.rejects(new SqliteStore(file).init(), /schema version 999, newer than this modeldock/);
    });

    it('a closed store answers StoreUnavailableError', async () => {
      const store = new SqliteStore(path.join(dir, 'closed.db'));
      await store.init();
      await store.close();
      await assert.rejects(store.ping(), StoreUnavailableError);
      await assert.rejects(store.getJob('a1'), StoreUnavailableError);
    });
  });
}
