/**
 * NVIDIA's own Triton client (tritonclient from PyPI, HTTP and gRPC) against modeldock,
 * as a Triton user would call it: the router over HTTP and gRPC with the job id as the
 * model name, and a worker directly over HTTP and gRPC (both on the worker's one port;
 * the router translates its gRPC calls to the worker's HTTP). Every call of the protocol the client makes, JSON and binary tensors,
 * an unknown model and malformed tensors (the client reports the error, it does not
 * crash). Real router, real Docker worker, m-131 and ds-550.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { freePort } from '../helpers/ports.js';
import { venvPython } from '../helpers/python.js';
import {
  DATASETS_DIR,
  REPO_ROOT,
  getJson,
  postJson,
  startTestRouter,
  type TestRouter,
} from '../helpers/router.js';

import { WORKER_SECRET_HEADER } from '../../src/worker-secret.js';

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, 'test/python/oip_tritonclient.py');
const RECORDS = path.join(DATASETS_DIR, 'ds-550/records.jsonl');

interface Failure {
  status: string;
  message: string;
}

/** Runs the client script (asynchronously: the router under test lives in this process). */
async function tritonclient(
  protocol: 'http' | 'grpc',
  address: string,
  model: string,
  headers: Record<string, string> = {},
  messageLimit?: number,
): Promise<any> {
  const python = venvPython('tritonclient');
  const { stdout } = await run(python, [SCRIPT, protocol, address, model, RECORDS, '--load-unload'], {
    env: {
      ...process.env,
      OIP_HEADERS: JSON.stringify(headers),
      ...(messageLimit ? { OIP_MESSAGE_LIMIT: String(messageLimit) } : {}),
    },
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout);
}

function checkCommon(report: any, model: string, statusOf: (kind: 'invalid' | 'not_found') => string): void {
  assert.equal(report.live, true);
  assert.equal(report.ready, true);
  assert.equal(report.model_ready, true);
  for (const key of ['infer_json', 'infer_binary', 'still_serving']) {
    assert.deepEqual(report[key].labels, report.labels.slice(0, report[key].labels.length), key);
    assert.equal(report[key].labels.length, 8, key);
    assert.deepEqual(report[key].probabilities_shape, [8, 10], key);
    assert.equal(report[key].id, 'req-7', `${key}: the request id comes back`);
    assert.equal(report[key].model_name, model, key);
  }
  // ds-550 is labelled; m-131 gets these eight right.
  assert.deepEqual(report.infer_json.labels, report.labels);

  const metadata = report.model_metadata;
  assert.equal(metadata.name, model);
  assert.equal(metadata.platform, 'onnxruntime_onnx');
  assert.deepEqual(
    metadata.inputs.map((i: any) => [i.name, i.datatype, i.shape.map(Number)]),
    [['pixels', 'FP32', [-1, 64]]],
  );
  const config = report.model_config;
  assert.equal(config.name, model);
  assert.equal(config.platform, 'onnxruntime_onnx');
  assert.equal(config.backend, 'onnxruntime');
  // m-131's first dimension is a dynamic batch dimension: the dynamic batcher is on by
  // default, and the dims leave the batch dimension out, as Triton's do.
  assert.equal(Number(config.max_batch_size), 64);
  assert.deepEqual(
    config.input.map((i: any) => [i.name, i.data_type, i.dims.map(Number)]),
    [['pixels', 'TYPE_FP32', [64]]],
  );
  assert.deepEqual(
    config.output.map((o: any) => [o.name, o.data_type, (o.dims ?? []).map(Number)]),
    [
      ['label', 'TYPE_INT64', []],
      ['probabilities', 'TYPE_FP32', [10]],
    ],
  );
  assert.equal(Number(config.dynamic_batching.max_queue_delay_microseconds ?? 0), 0);
  assert.equal(config.parameters.dynamic_batching_delay.string_value, 'adaptive');

  // Statistics: two successful inferences at first, then three failures on top.
  const [stats] = report.stats.model_stats;
  assert.equal(stats.name, model);
  assert.equal(stats.version, '1');
  const success = Number(stats.inference_stats.success.count);
  assert.ok(success >= 2, `success count ${success}`);
  for (const phase of ['success', 'queue', 'compute_input', 'compute_infer', 'compute_output']) {
    const duration = stats.inference_stats[phase];
    assert.equal(Number(duration.count), success, `${phase} count`);
    assert.ok(Number(duration.ns) > 0, `${phase} has a duration in ns`);
  }
  const parts = ['queue', 'compute_input', 'compute_infer', 'compute_output'].reduce(
    (sum, phase) => sum + Number(stats.inference_stats[phase].ns),
    0,
  );
  assert.ok(parts <= Number(stats.inference_stats.success.ns), 'the phases fit in the requests’ duration');
  assert.ok(
    report.stats_all.model_stats.some((s: any) => s.name === model),
    'all-model statistics list it',
  );
  const [later] = report.stats_after_failures.model_stats;
  assert.equal(
    Number(later.inference_stats.fail.count),
    Number(stats.inference_stats.fail.count ?? 0) + 3,
    'three failed requests counted',
  );

  const failures: [string, Failure, 'invalid' | 'not_found', RegExp][] = [
    ['unknown model', report.unknown_model, 'not_found', /no-such-job/],
    ['malformed shape', report.malformed_shape, 'invalid', /shape \[1,63\]; the model expects \[-1,64\]/],
    ['malformed binary', report.malformed_binary, 'invalid', /shape \[1,63\]; the model expects \[-1,64\]/],
    ['wrong datatype', report.wrong_datatype, 'invalid', /datatype INT32; the model expects FP32/],
  ];
  for (const [name, failure, kind, message] of failures) {
    assert.equal(failure.status, statusOf(kind), name);
    assert.match(failure.message, message, name);
  }
  assert.equal(report.unknown_model_ready, false);
  assert.equal(report.model_ready_after_unload, false);
}

const httpStatus = (kind: 'invalid' | 'not_found') => (kind === 'invalid' ? '400' : '404');
const grpcStatus = (kind: 'invalid' | 'not_found') =>
  kind === 'invalid' ? 'StatusCode.INVALID_ARGUMENT' : 'StatusCode.NOT_FOUND';

/** The protocol extensions the router serves, sorted (GET /v2, ServerMetadata). */
const ROUTER_EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'model_repository', 'statistics'];
/** A worker serves batch inference over a dataset besides. */
const WORKER_EXTENSIONS = ['batch', ...ROUTER_EXTENSIONS];

describe('tritonclient (NVIDIA’s Triton client) against modeldock', () => {
  let t: TestRouter;
  let grpcAddress: string;
  before(async () => {
    venvPython('tritonclient'); // fail early, with the fix, when the client is missing
    const grpcPort = await freePort();
    t = await startTestRouter({ env: { MODELDOCK_GRPC_PORT: String(grpcPort) } });
    assert.equal(t.router.grpcPort, grpcPort);
    grpcAddress = `127.0.0.1:${grpcPort}`;
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'o1', model: 'm-131', dataset: 'ds-550' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });
  after(async () => {
    await t?.cleanup();
  });

  it('HTTP, through the router: every call, JSON and binary tensors, errors reported', async () => {
    const report = await tritonclient('http', new URL(t.url).host, 'o1');
    checkCommon(report, 'o1', httpStatus);
    assert.deepEqual(report.server_metadata.extensions.sort(), ROUTER_EXTENSIONS);
    assert.deepEqual(report.index, [{ name: 'o1', version: '1', state: 'READY', reason: '' }]);
    // Unloaded, the next inference loads it on demand.
    assert.deepEqual(report.infer_after_unload.labels, report.labels);
  });

  it('gRPC, through the router: every call, typed and raw tensors, statuses, deadline and size limit', async () => {
    const report = await tritonclient('grpc', grpcAddress, 'o1');
    checkCommon(report, 'o1', grpcStatus);
    assert.deepEqual(report.server_metadata.extensions.sort(), ROUTER_EXTENSIONS);
    assert.deepEqual(report.index.models, [{ name: 'o1', version: '1', state: 'READY' }]);
    assert.deepEqual(report.infer_after_unload.labels, report.labels);
    assert.equal(report.deadline.status, 'StatusCode.DEADLINE_EXCEEDED');
    assert.equal(report.too_large.status, 'StatusCode.RESOURCE_EXHAUSTED');
    assert.match(report.too_large.message, /larger than max/);
  });

  it('HTTP, straight to the job’s worker: the same calls, and a name not loaded is the client’s 404', async () => {
    const endpoint: string = (await getJson(`${t.url}/v1/jobs/o1`)).body.server.endpoint;
    // The worker obeys only its router: the client sends the router's worker secret.
    const secret = t.runtime.workerSecret?.(endpoint);
    assert.ok(secret, 'the runtime knows its worker secret');
    // The worker serves a model under the name it is loaded as: here m-131 under its own id.
    const report = await tritonclient('http', new URL(endpoint).host, 'm-131', {
      [WORKER_SECRET_HEADER]: secret,
    });
    checkCommon(report, 'm-131', httpStatus);
    assert.deepEqual(report.server_metadata.extensions.sort(), WORKER_EXTENSIONS);
    assert.ok(report.index.some((e: any) => e.name === 'o1' && e.state === 'READY'));
    // No router in between: nothing loads an unloaded name on demand.
    assert.equal(report.infer_after_unload.status, '404');
    assert.match(report.infer_after_unload.message, /model "m-131" is not loaded/);
  });

  it('gRPC, straight to the job’s worker on its one port: the same calls, the secret as metadata', async () => {
    const endpoint: string = (await getJson(`${t.url}/v1/jobs/o1`)).body.server.endpoint;
    const secret = t.runtime.workerSecret?.(endpoint);
    assert.ok(secret, 'the runtime knows its worker secret');
    // The worker's message limit is its body limit, which its memory sets.
    const stats = await getJson(`${endpoint}/v2/worker/stats`, { [WORKER_SECRET_HEADER]: secret });
    const limit: number = stats.body.body_limit_bytes;
    assert.ok(limit > 0, JSON.stringify(stats.body));
    const report = await tritonclient(
      'grpc',
      new URL(endpoint).host,
      'm-131',
      { [WORKER_SECRET_HEADER]: secret },
      limit,
    );
    checkCommon(report, 'm-131', grpcStatus);
    assert.deepEqual(report.server_metadata.extensions.sort(), WORKER_EXTENSIONS);
    assert.ok(report.index.models.some((e: any) => e.name === 'o1' && e.state === 'READY'));
    assert.equal(report.infer_after_unload.status, 'StatusCode.NOT_FOUND');
    assert.match(report.infer_after_unload.message, /model "m-131" is not loaded/);
    assert.equal(report.deadline.status, 'StatusCode.DEADLINE_EXCEEDED');
    assert.equal(report.too_large.status, 'StatusCode.RESOURCE_EXHAUSTED');
    assert.match(report.too_large.message, new RegExp(`larger than max \\(\\d+ vs\\.? ${limit}\\)`));
  });

  it('the worker refuses gRPC without its secret, and its health answers anyone', async () => {
    const endpoint: string = (await getJson(`${t.url}/v1/jobs/o1`)).body.server.endpoint;
    const { stdout } = await run(
      venvPython('tritonclient'),
      [
        '-c',
        `import json, sys, tritonclient.grpc as g
from tritonclient.utils import InferenceServerException
c = g.InferenceServerClient(sys.argv[1])
out = {"live": c.is_server_live(), "ready": c.is_server_ready()}
try:
    c.get_model_metadata("o1")
except InferenceServerException as e:
    out["metadata"] = [str(e.status()), e.message()]
print(json.dumps(out))`,
        new URL(endpoint).host,
      ],
      { timeout: 60_000 },
    );
    const answer = JSON.parse(stdout);
    assert.equal(answer.live, true);
    assert.equal(answer.ready, true);
    assert.equal(answer.metadata[0], 'StatusCode.UNAUTHENTICATED');
    assert.match(answer.metadata[1], /x-modeldock-worker-secret/);
  });

  it('runs the Python examples of docs/api.md as written (only the addresses and the secret changed)', async () => {
    const created = await postJson(`${t.url}/inference_router/`, {
      job_id: 'a1',
      model: 'm-131',
      dataset: 'ds-550',
      operation_type: 'DEPLOY_CREATE',
    });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const doc = readFileSync(path.join(REPO_ROOT, 'docs/api.md'), 'utf8');
    const endpoint: string = (await getJson(`${t.url}/v1/jobs/a1`)).body.server.endpoint;
    const secret = t.runtime.workerSecret?.(endpoint);
    assert.ok(secret, 'the runtime knows its worker secret');
    for (const protocol of ['http', 'grpc', 'worker-grpc']) {
      const block = new RegExp(
        `<!-- tritonclient-example: ${protocol} -->\\n\`\`\`python\\n([\\s\\S]*?)\`\`\``,
      ).exec(doc);
      assert.ok(block, `docs/api.md has the ${protocol} example`);
      const code = block[1]!
        .replaceAll('localhost:8080', new URL(t.url).host)
        .replaceAll('localhost:8081', grpcAddress)
        .replaceAll('localhost:8000', new URL(endpoint).host)
        .replaceAll('"change-me"', JSON.stringify(secret));
      const { stdout } = await run(venvPython('tritonclient'), ['-c', code], { timeout: 60_000 });
      const lines = stdout.trim().split('\n');
      assert.ok(lines.includes('[0]'), `${protocol}: the digit is a zero\n${stdout}`);
      if (protocol === 'http') assert.match(lines[0]!, /'data_type': 'TYPE_FP32', 'dims': \[64\]/);
      else if (protocol === 'grpc') assert.match(lines.at(-1)!, /^\d+$/, 'a success count');
    }
  });

  it('keeps modeldock’s coded errors outside /v2', async () => {
    const response = await getJson(`${t.url}/v1/jobs/no-such-job`);
    assert.equal(response.status, 404);
    assert.equal(response.body.error.code, 'not_found');
    const unknown = await getJson(`${t.url}/v2/no/such/route`);
    assert.equal(unknown.status, 404);
    assert.equal(typeof unknown.body.error, 'string', 'the protocol’s form under /v2');
  });
});
