/**
 * The guard's repository links (src/worker/guard-repository.ts), through a real guard on
 * a loopback port and real directories: a pooled server's repository gets a link to a
 * model of the store under a job's name, behind the worker secret; what is not a model of
 * the store is refused and links nothing.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createGuard, type GuardOptions } from '../../src/worker/guard.js';
import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';

const secret = 's3cret-for-the-guard-test';

/** A guard listening on a free loopback port; nothing listens behind it (only its own route is called). */
async function listening(links: GuardOptions['links']): Promise<{ server: Server; url: string }> {
  const server = createGuard({ upstreamPort: 9, secret, ...(links ? { links } : {}) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('guard: linking a model into a pooled server’s repository', () => {
  let dir: string;
  let store: string;
  let repository: string;
  let guard: { server: Server; url: string };
  const link = (
    name: string,
    body: unknown,
    headers: Record<string, string> = { [WORKER_SECRET_HEADER]: secret },
    url = guard.url,
  ) =>
    fetch(`${url}/modeldock/repository/${name}`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-guard-links-'));
    store = path.join(dir, 'store');
    repository = path.join(dir, 'repository');
    await mkdir(path.join(store, 'm-1'), { recursive: true });
    await writeFile(path.join(store, 'm-1', 'model.json'), '{}');
    await writeFile(path.join(store, 'not-a-dir'), '');
    await mkdir(path.join(dir, 'outside'));
    await symlink(path.join(dir, 'outside'), path.join(store, 'escape'));
    await mkdir(repository);
    guard = await listening({ repository, store });
  });
  after(async () => {
    guard?.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('links the model under the name, and again (replacing the link) when asked again', async () => {
    const first = await link('job-1', { model: 'm-1' });
    assert.equal(first.status, 200, await first.clone().text());
    assert.deepEqual(await first.json(), { name: 'job-1', model: 'm-1' });
    assert.equal(await readlink(path.join(repository, 'job-1')), path.join(store, 'm-1'));
    assert.equal((await link('job-1', { model: 'm-1' })).status, 200);
    assert.deepEqual(await readdir(repository), ['job-1']);
  });

  it('refuses without the worker secret', async () => {
    const refused = await link('job-2', { model: 'm-1' }, {});
    assert.equal(refused.status, 401);
    assert.deepEqual(await readdir(repository), ['job-1']);
  });

  it('refuses what is not a model directory of the store, linking nothing', async () => {
    const cases: [string, unknown, number][] = [
      ['job-3', { model: 'missing' }, 404],
      ['job-3', { model: 'not-a-dir' }, 400],
      ['job-3', { model: 'escape' }, 400],
      ['job-3', { model: '../outside' }, 400],
      ['job-3', {}, 400],
      ['job-3', 'not json', 400],
      ['.hidden', { model: 'm-1' }, 400],
      ['job%2F..%2Fx', { model: 'm-1' }, 400],
      ['%E0%A4%A', { model: 'm-1' }, 400],
    ];
    for (const [name, body, status] of cases) {
      const answer = await link(name, body);
      assert.equal(answer.status, status, `${name} ${JSON.stringify(body)}: ${await answer.text()}`);
    }
    assert.deepEqual(await readdir(repository), ['job-1']);
  });

  it('a guard of a server started for one model links nothing', async () => {
    const single = await listening({ repository, store: '' });
    try {
      assert.equal((await link('job-4', { model: 'm-1' }, undefined, single.url)).status, 404);
      assert.deepEqual(await readdir(repository), ['job-1']);
    } finally {
      single.server.close();
    }
  });
});
