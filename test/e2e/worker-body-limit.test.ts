/**
 * One request must not kill a worker (issue #17): a Docker worker with a 512 MiB memory
 * limit gets the worst JSON body it accepts (a tensor of `0`s, two bytes per element, at
 * exactly its body limit) and stays alive; the peak of its cgroup's memory and its rss
 * before and after are measured and reported. One byte more is a 413.
 */
import assert from 'node:assert/strict';
import { access, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

const MEMORY = 512 * 1024 * 1024;

/** A valid m-131 request ([rows, 64] FP32 of zeros) padded with spaces to exactly `size` bytes. */
function bodyOfSize(size: number): Buffer {
  const head = '{"inputs":[{"name":"pixels","datatype":"FP32","shape":[';
  const tail = ']}],"outputs":[{"name":"label"}]}';
  // rows of 64 "0," take 128 bytes each, plus the shape digits and brackets.
  const rows = Math.floor((size - head.length - tail.length - 40) / 128);
  const data = `${'0,'.repeat(rows * 64 - 1)}0`;
  const json = `${head}${rows},64],"data":[${data}${tail}`;
  assert.ok(json.length <= size);
  return Buffer.from(json.slice(0, -1) + ' '.repeat(size - json.length) + '}');
}

/**
 * The file holding the container's peak memory use, where the kernel keeps one: cgroup v1's
 * memory.max_usage_in_bytes or cgroup v2's memory.peak (kernel 5.19+), found through the
 * container's own /proc/<pid>/cgroup and the usual places of Docker's cgroup drivers.
 */
async function memoryPeakFile(pid: number, id: string): Promise<string | undefined> {
  const candidates: string[] = [];
  for (const line of (await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '')).split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    if (match[1]!.split(',').includes('memory')) {
      candidates.push(`/sys/fs/cgroup/memory${match[2]}/memory.max_usage_in_bytes`);
    }
    if (match[1] === '') candidates.push(`/sys/fs/cgroup${match[2]}/memory.peak`);
  }
  candidates.push(
    `/sys/fs/cgroup/memory/docker/${id}/memory.max_usage_in_bytes`,
    `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.peak`,
    `/sys/fs/cgroup/docker/${id}/memory.peak`,
  );
  for (const file of candidates) {
    if (
      await access(file).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  return undefined;
}

describe('worker: a body at the limit leaves the worker alive', () => {
  let t: TestRouter;
  before(async () => {
    t = await startTestRouter({ env: { MODELDOCK_WORKER_MEMORY: '512m', MODELDOCK_BODY_LIMIT: '512m' } });
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'big', model: 'm-131', dataset: 'ds-550' });
    assert.ok(created.status < 300, JSON.stringify(created.body));
  });
  after(async () => {
    await t?.cleanup();
  });

  it('sends the worst body the worker accepts; it answers and is still running', async (ctx) => {
    const server = (await t.store.currentServer('big'))!;
    const pool = t.router.workers.pool(server.endpoint!);
    const stats = async () => {
      const response = await pool.request({ method: 'GET', path: '/v2/worker/stats' });
      return (await response.body.json()) as { rss_bytes: number; body_limit_bytes?: number };
    };
    const before = await stats();
    // On a worker that does not say its limit, what it used to accept under 512 MiB.
    const limit = before.body_limit_bytes ?? 64 * 1024 * 1024;
    assert.ok(limit <= MEMORY / 8, `a ${limit}-byte limit under ${MEMORY} bytes of memory`);
    const details = await t.docker.getContainer(server.workerName).inspect();
    const peakFile = await memoryPeakFile(details.State.Pid, details.Id);
    if (peakFile) await writeFile(peakFile, '0').catch(() => undefined); // reset the peak where the kernel allows it

    // One byte over: refused on the declared length, before the body is sent at all.
    const { hostname, port } = new URL(server.endpoint!);
    const secret = t.runtime.workerSecret?.(server.endpoint!) ?? '';
    const tooBig = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () =>
        socket.write(
          `POST /v2/models/big/infer HTTP/1.1\r\nhost: w\r\ncontent-type: application/json\r\n` +
            `x-modeldock-worker-secret: ${secret}\r\ncontent-length: ${limit + 1}\r\n\r\n`,
        ),
      );
      socket.once('data', (chunk) => {
        resolve(chunk.toString('latin1').split('\r\n')[0]!);
        socket.destroy();
      });
      socket.once('error', reject);
    });
    assert.match(tooBig, /^HTTP\/1\.1 413/);

    const atLimit = await pool.request({
      method: 'POST',
      path: '/v2/models/big/infer',
      headers: { 'content-type': 'application/json' },
      body: bodyOfSize(limit),
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    const text = await atLimit.body.text();
    assert.ok([200, 400].includes(atLimit.statusCode), `${atLimit.statusCode}: ${text.slice(0, 200)}`);
    const after = await stats();
    const running = (await t.docker.getContainer(server.workerName).inspect()).State;
    assert.equal(running.Running, true, `worker died: oom=${running.OOMKilled} exit=${running.ExitCode}`);
    ctx.diagnostic(`body ${limit} B under ${MEMORY} B: rss ${before.rss_bytes} → ${after.rss_bytes} B`);
    assert.ok(after.rss_bytes < MEMORY, `rss ${after.rss_bytes} B reached the memory limit`);
    if (peakFile) {
      const peak = Number((await readFile(peakFile, 'utf8')).trim());
      assert.ok(Number.isFinite(peak) && peak > 0, `${peakFile} holds ${peak}`);
      ctx.diagnostic(
        `cgroup peak ${peak} B (${peakFile}; peak − rss before = ${((peak - before.rss_bytes) / limit).toFixed(1)}× the body)`,
      );
      assert.ok(peak < MEMORY, `peak ${peak} reached the memory limit`);
    } else {
      ctx.diagnostic(
        'NOT CHECKED: the cgroup memory peak (no memory.max_usage_in_bytes or memory.peak found for the container); rss and survival were',
      );
    }
    const again = await postJson(`${t.url}/v2/models/big/infer`, {
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: new Array(64).fill(0) }],
    });
    assert.equal(again.status, 200);
  });
});
