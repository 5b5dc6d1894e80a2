/**
 * The `modeldock` client commands end to end: each runs as its own process (as an
 * operator runs it) against a real router with real Docker workers, and is judged by its
 * output and exit code.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DIGITS } from '../helpers/fixtures.js';
import { freePort } from '../helpers/ports.js';
import { REPO_ROOT, startTestRouter, type TestRouter } from '../helpers/router.js';

const execFileAsync = promisify(execFile);
const CLI = ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli/main.ts')];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], env: Record<string, string> = {}): ChildProcess {
  const { NO_COLOR: _n, FORCE_COLOR: _f, ...inherited } = process.env;
  return spawn(process.execPath, [...CLI, ...args], {
    cwd: REPO_ROOT,
    env: { ...inherited, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

function run(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  const child = start(args, options.env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.end(options.input ?? '');
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** A running command's stdout, all of it so far; waitFor resolves once it matches. */
function watchOutput(child: ChildProcess) {
  let text = '';
  const waiters: { matches: (text: string) => boolean; resolve: (text: string) => void }[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    text += d;
    for (const w of [...waiters]) {
      if (w.matches(text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(text);
      }
    }
  });
  return {
    /** Until the output matches a pattern, or a predicate holds for it. */
    waitFor(pattern: RegExp | ((text: string) => boolean), timeoutMs = 60_000): Promise<string> {
      const matches = typeof pattern === 'function' ? pattern : (t: string) => pattern.test(t);
      if (matches(text)) return Promise.resolve(text);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${String(pattern)} in: ${text}`)), timeoutMs);
        waiters.push({ matches, resolve: (t) => (clearTimeout(timer), resolve(t)) });
      });
    },
  };
}

const ESC = '\x1b[';
const body = {
  inputs: [
    {
      name: 'pixels',
      shape: [2, 64],
      datatype: 'FP32',
      data: DIGITS.slice(0, 2).map((r) => r.inputs.pixels),
    },
  ],
};

describe('modeldock CLI against a real router', () => {
  let t: TestRouter;
  let url: Record<string, string>;

  before(async () => {
    t = await startTestRouter();
    url = { MODELDOCK_URL: t.url };
  });
  after(async () => {
    await t?.cleanup();
  });

  it('create brings a job to ready and says so; --json gives the operation record', async () => {
    const created = await run(['create', 'c1', '--model', 'm-131', '--dataset', 'ds-550'], { env: url });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /c1: DEPLOY_CREATE succeeded → ready\s+server inf-\d+/);
    assert.match(created.stdout, /create \d+ ms/);
    assert.ok(!created.stdout.includes(ESC), 'no colour when stdout is not a terminal');

    const again = await run(['create', 'c1', '--model', 'm-131', '--dataset', 'ds-550', '--json'], {
      env: url,
    });
    assert.equal(again.code, 0, again.stderr);
    const outcome = JSON.parse(again.stdout);
    assert.equal(outcome.server.state, 'ready');
    assert.equal(outcome.operation.type, 'DEPLOY_CREATE');
  });

  it('ps lists the server with its state, container and memory; jobs and ops show the records', async () => {
    const ps = await run(['ps'], { env: url });
    assert.equal(ps.code, 0, ps.stderr);
    const [head, ...rows] = ps.stdout.trim().split('\n');
    assert.match(
      head!,
      /^JOB\s+REPLICAS\s+SERVER\s+STATE\s+MODEL\s+CONTAINER\s+AGE\s+MEMORY\s+LAST INFERENCE$/,
    );
    const row = rows.find((r) => r.startsWith('c1 '));
    assert.ok(row, ps.stdout);
    assert.match(
      row,
      new RegExp(
        `c1\\s+1/1\\s+inf-\\d+\\s+ready\\s+m-131\\s+${t.instance}-inf-\\d+\\s+\\d+[smhd]\\s+\\d+(\\.\\d)? MiB`,
      ),
    );

    const psJson = JSON.parse((await run(['ps', '--json'], { env: url })).stdout);
    const server = psJson.servers.find((s: { job_id: string }) => s.job_id === 'c1');
    assert.ok(server.memory_bytes > 20 * 1024 * 1024, `memory ${server.memory_bytes}`);

    const jobs = JSON.parse((await run(['jobs', '--json'], { env: url })).stdout);
    assert.deepEqual(
      jobs.jobs.map((j: { job_id: string; state: string }) => [j.job_id, j.state]),
      [['c1', 'ready']],
    );
    const ops = await run(['ops', '--job', 'c1'], { env: url });
    assert.equal(ops.code, 0, ops.stderr);
    assert.match(ops.stdout, /DEPLOY_CREATE\s+c1\s+succeeded/);
    assert.match(ops.stdout, /create \d+ ms · start/);
  });

  it('infer reads an Open Inference Protocol body from stdin and prints the outputs', async () => {
    const answer = await run(['infer', 'c1', '--input', '-'], { env: url, input: JSON.stringify(body) });
    assert.equal(answer.code, 0, answer.stderr);
    const labels = DIGITS.slice(0, 2).map((r) => r.label);
    assert.match(answer.stdout, new RegExp(`^label INT64 \\[2\\]: ${labels.join(', ')}$`, 'm'));
  });

  it('logs prints the worker output; top shows every worker with CPU and memory', async () => {
    const logs = await run(['logs', 'c1', '--tail', '20'], { env: url });
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /worker listening/);

    const top = await run(['top', '--once', '--json'], { env: url });
    assert.equal(top.code, 0, top.stderr);
    const sample = JSON.parse(top.stdout);
    const worker = sample.workers.find((w: { job_id: string }) => w.job_id === 'c1');
    assert.ok(worker, top.stdout);
    assert.equal(typeof worker.cpu_percent, 'number', 'two samples give a CPU share');
    assert.ok(worker.memory_bytes > 20 * 1024 * 1024);

    const human = await run(['top', '--once'], { env: url });
    assert.match(human.stdout, /^\d+ workers?, CPU [\d.]+ %, memory [\d.]+ MiB$/m);
    assert.match(
      human.stdout,
      new RegExp(`${t.instance}-inf-\\d+\\s+c1\\s+ready\\s+m-131\\s+[\\d.]+ %\\s+[\\d.]+ MiB`),
    );
  });

  it('top redraws in place on a terminal (a pseudo-terminal from util-linux script)', async () => {
    const command = [process.execPath, ...CLI, 'top', '--interval', '0.5'].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-q', '-c', command, '/dev/null'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...url, TERM: 'xterm' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const output = watchOutput(child);
    const CLEAR = '\x1b[H\x1b[2J'; // cursor home, clear screen
    // Each frame is drawn from the top of a cleared screen: refreshed in place.
    const frames = (text: string) => text.split(CLEAR).slice(1);
    try {
      const screen = await output.waitFor(
        (text) => frames(text).filter((f) => /CONTAINER[\s\S]*c1/.test(f)).length >= 2,
      );
      for (const frame of frames(screen).slice(0, 2)) assert.match(frame, /^\d+ workers?, CPU [\d.]+ %/);
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
  });

  it('events follows state changes live while unload and load run', async () => {
    const events = start(['events', '--json'], url);
    // ops -f lists the recent operations, then follows: the unload must appear there too.
    const opsFollow = start(['ops', '--job', 'c1', '--follow', '--json'], url);
    const opsOutput = watchOutput(opsFollow);
    try {
      await opsOutput.waitFor(/"type":"DEPLOY_CREATE"/);
      // The command prints the live servers first, once it is subscribed: then act.
      const output = watchOutput(events);
      await output.waitFor(/"job_id":"c1"/);
      const seen = output.waitFor(/"type":"DEPLOY_UNLOAD"/);
      assert.equal((await run(['unload', 'c1'], { env: url })).code, 0);
      const records = (await seen)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const states = records
        .filter((e) => e.type === 'server' && e.server.job_id === 'c1')
        .map((e) => e.server.state);
      assert.deepEqual(states, ['ready', 'unloading', 'unloaded']);
      const followed = (await opsOutput.waitFor(/"type":"DEPLOY_UNLOAD"/)).trim().split('\n');
      assert.equal(JSON.parse(followed.at(-1)!).type, 'DEPLOY_UNLOAD');
    } finally {
      events.kill('SIGINT');
      opsFollow.kill('SIGINT');
    }
    const loaded = await run(['load', 'c1'], { env: url });
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stdout, /DEPLOY_LOAD succeeded → ready/);
  });

  it('logs --follow streams until the worker stops (terminate), then exits 0', async () => {
    const follow = start(['logs', 'c1', '--follow', '--tail', '5'], url);
    const exited = new Promise<number | null>((resolve) => follow.once('close', resolve));
    const output = watchOutput(follow);
    await output.waitFor(/worker listening/);
    const tail = output.waitFor(/worker stopping/);
    const terminated = await run(['terminate', 'c1'], { env: url });
    assert.equal(terminated.code, 0, terminated.stderr);
    assert.match(terminated.stdout, /TERMINATE succeeded/);
    await tail;
    assert.equal(await exited, 0);
  });

  it('temp runs over the dataset and summarizes count, accuracy and duration', async () => {
    const result = await run(['temp', 't1', '--model', 'm-131', '--dataset', 'ds-550'], { env: url });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^count\s+550$/m);
    const accuracy = Number(/^accuracy\s+([\d.]+) %/m.exec(result.stdout)?.[1]);
    assert.ok(accuracy > 90, result.stdout);
    assert.match(result.stdout, /^total\s+[\d.]+ (ms|s)$/m);
    // Progress went to stderr (not a terminal here: one line per state).
    assert.match(result.stderr, /t1: (creating|loading|ready)/);
  });

  it('pool and reconcile answer; --json everywhere parses', async () => {
    const pool = JSON.parse((await run(['pool', '--json'], { env: url })).stdout);
    assert.equal(pool.size, 0);
    const reconcile = await run(['reconcile', '--json'], { env: url });
    assert.equal(reconcile.code, 0, reconcile.stderr);
    assert.equal(typeof JSON.parse(reconcile.stdout).servers, 'number');
    const human = await run(['pool'], { env: url });
    assert.match(human.stdout, /configured size\s+0/);
  });

  it('errors are one line with a meaningful exit code', async () => {
    const missing = await run(['load', 'nope'], { env: url });
    assert.equal(missing.code, 5, 'not found');
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /^modeldock: 404 not_found: .*nope/);

    const noWorker = await run(['logs', 'nope'], { env: url });
    assert.equal(noWorker.code, 5, noWorker.stderr);
    const badTail = await fetch(`${t.url}/v1/jobs/c1/logs?tail=lots`);
    assert.equal(badTail.status, 400);

    const bad = await run(['create', 'b1', '--model', '../etc', '--dataset', 'ds-550'], { env: url });
    assert.ok(bad.code === 6 || bad.code === 5, `exit ${bad.code}: ${bad.stderr}`);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);

    const port = await freePort();
    const nobody = await run(['ps', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(nobody.code, 3);
    assert.match(nobody.stderr, /cannot reach the router at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);

    const usage = await run(['create', 'x1'], { env: url });
    assert.equal(usage.code, 2);
    const unknown = await run(['frobnicate'], { env: url });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command frobnicate/);
    const startExtra = await run(['start', 'frobnicate'], { env: url });
    assert.equal(startExtra.code, 2, 'start takes no argument; the router did not start');
  });

  it('colour only when asked for or on a terminal, never with NO_COLOR', async () => {
    const forced = await run(['jobs', '--color'], { env: url });
    assert.ok(forced.stdout.includes(ESC), 'colour with --color');
    const noColour = await run(['jobs'], { env: { ...url, FORCE_COLOR: '1', NO_COLOR: '1' } });
    assert.ok(!noColour.stdout.includes(ESC), 'NO_COLOR wins');
  });

  it('prints a shell completion script and completes commands', async () => {
    const script = await run(['completion']);
    assert.equal(script.code, 0);
    assert.match(script.stdout, /modeldock/);
    const completions = await run(['--get-yargs-completions', 'modeldock', 'te']);
    assert.match(completions.stdout, /^temp/m);
    assert.match(completions.stdout, /^terminate/m);
  });

  it(
    "runs as the README shows it: npx modeldock, the package's compiled command",
    { timeout: 600_000 },
    async () => {
      // What `npm start` does first; npx then finds the package's own bin (dist/cli/main.js).
      // Asynchronous: the router under test answers from this very process.
      await execFileAsync('npm', ['run', 'build'], { cwd: REPO_ROOT, timeout: 300_000 });
      const npx = async (args: string) => {
        const child = spawn('npx', args.split(' '), {
          cwd: REPO_ROOT,
          env: { ...process.env, ...url },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const [code] = (await once(child, 'close')) as [number | null];
        return { status: code, stdout, stderr };
      };
      // README, "Watch and drive it": the same commands, against this test's router (MODELDOCK_URL).
      const created = await npx('modeldock create a1 --model m-131 --dataset ds-550');
      assert.equal(created.status, 0, created.stderr);
      assert.match(created.stdout, /a1: DEPLOY_CREATE succeeded → ready/);
      const ps = await npx('modeldock ps');
      assert.equal(ps.status, 0, ps.stderr);
      assert.match(ps.stdout, /^a1\s.*\binf-\d+\s+ready\s+m-131\b/m);
      const terminated = await npx('modeldock terminate a1');
      assert.equal(terminated.status, 0, terminated.stderr);
    },
  );
});
