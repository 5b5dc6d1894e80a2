/**
 * What the Triton tests check on every runtime that runs it (process:
 * runtime-triton.test.ts; Kubernetes: kubernetes-foreign-servers.test.ts): NVIDIA's
 * tritonclient gets through the router what it gets from Triton directly, and a tensor
 * that does not fit the model gets Triton's own 400 without harming the job.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { LABELS } from '../../src/runtime/runtime.js';
import { DATASETS_DIR, REPO_ROOT } from './paths.js';
import { venvPython } from './python.js';
import { getJson, postJson, type TestRouter } from './router.js';
import { assertRoutedAsDirect } from './scratch-router.js';

const run = promisify(execFile);

/**
 * tritonclient (test/python/triton_predictions.py) infers 32 digits of ds-550 on job
 * `job` at every target (`<kind>=<host:port>`, kind http-binary, http-json or grpc): each
 * answers exactly as the `reference` target does, and a real classifier's answer (at
 * least 30 right). `secret` is the worker secret, for targets that are the server's guard.
 */
export async function assertTritonclientAgrees(
  job: string,
  targets: Record<string, string>,
  reference: string,
  secret: string,
): Promise<void> {
  const { stdout } = await run(
    venvPython('tritonclient'),
    [
      path.join(REPO_ROOT, 'test/python/triton_predictions.py'),
      job,
      path.join(DATASETS_DIR, 'ds-550/records.jsonl'),
      '32',
      ...Object.values(targets),
    ],
    {
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
      // Triton called directly is called through its guard, which asks for the secret.
      env: { ...process.env, MODELDOCK_WORKER_SECRET: secret },
    },
  );
  const report = JSON.parse(stdout);
  const expected = report[reference];
  assert.equal(expected.labels.length, 32);
  assert.equal(expected.probabilities[0].length, 10);
  for (const [name, target] of Object.entries(targets)) {
    assert.deepEqual(report[target], expected, `${name} (${target}) answers as ${reference} does`);
  }
  // A real classifier: m-133 gets at least 30 of these 32 right (96% on ds-550).
  const right = expected.labels.filter((label: number, i: number) => label === report.truth[i]).length;
  assert.ok(right >= 30, `${right} of 32 right`);
}

/** A tensor that does not fit m-133 gets Triton's 400 through the router; job a1 stays ready and serving. */
export async function assertBadTensorRefused(t: TestRouter): Promise<void> {
  const bad = await postJson(`${t.url}/v2/models/a1/infer`, {
    inputs: [{ name: 'pixels', shape: [1, 63], datatype: 'FP32', data: new Array(63).fill(0) }],
  });
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.match(JSON.stringify(bad.body), /shape|dims/i, 'the answer says what is wrong');
  const job = await getJson(`${t.url}/v1/jobs/a1`);
  assert.equal(job.body.state, 'ready');
  const worker = (await t.runtime.list()).find((w) => w.labels[LABELS.job] === 'a1')!;
  await assertRoutedAsDirect(t, worker.endpoint!, 'a1', 5);
}
