/**
 * Stopping and starting the Docker engine itself, for the fault test that restarts
 * dockerd while servers run. The engine is restarted with the command line it was
 * started with (as .ci/run starts it); the test fails if it cannot be restarted.
 */
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import Dockerode from 'dockerode';

async function dockerdPid(): Promise<number | undefined> {
  const { readdir } = await import('node:fs/promises');
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === 'dockerd') return Number(entry);
  }
  return undefined;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let interval = 50; !(await check()); interval = Math.min(interval * 2, 500)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

export async function stopEngine(): Promise<string[]> {
  const pid = await dockerdPid();
  if (!pid) throw new Error('no dockerd process found to restart');
  const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  process.kill(pid, 'SIGTERM');
  await until(async () => (await dockerdPid()) === undefined, 60_000, 'dockerd to stop');
  return args;
}

export async function startEngine(args: string[]): Promise<void> {
  const log = openSync('/var/log/modeldock-test-dockerd.log', 'a');
  const child = spawn(args[0]!, args.slice(1), { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  const docker = new Dockerode();
  await until(
    () =>
      docker.ping().then(
        () => true,
        () => false,
      ),
    60_000,
    'dockerd to answer',
  );
}
