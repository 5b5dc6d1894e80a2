/**
 * Dynamic batching end to end: a job on m-131 in a real worker container, driven through
 * the router by many concurrent HTTP (JSON and binary) and gRPC clients. Each answer is
 * the request's own prediction, the worker ran far fewer batches than requests (its
 * statistics, read through the router), and the configuration both protocols report is
 * the batching in force.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIGITS } from '../helpers/fixtures.js';
import { inferenceClient, unaryCall, type InferenceClient } from '../helpers/grpc-client.js';
import { freePort } from '../helpers/ports.js';
import { getJson, postJson, startTestRouter, type TestRouter } from '../helpers/router.js';

const call = (client: InferenceClient, method: string, request: object) =>
  unaryCall(client, method, request, { deadline: Date.now() + 60_000 });

describe('dynamic batching through the router, on the real engine', { timeout: 300_000 }, () => {
  let t: TestRouter;
  let client: InferenceClient;
  const records = DIGITS.slice(0, 120);
  /** What m-131 predicts for each record, from one request carrying them all. */
  let expected: number[];

  before(async () => {
    const grpcPort = await freePort();
    t = await startTestRouter({ env: { MODELDOCK_GRPC_PORT: String(grpcPort) } });
    const created = await postJson(`${t.url}/v1/jobs`, { job_id: 'b1', model: 'm-131', dataset: 'ds-550' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const all = await postJson(`${t.url}/v2/models/b1/infer`, {
      inputs: [
        {
          name: 'pixels',
          datatype: 'FP32',
          shape: [records.length, 64],
          data: records.map((r) => r.inputs.pixels),
        },
      ],
      outputs: [{ name: 'label' }],
    });
    assert.equal(all.status, 200, JSON.stringify(all.body));
    expected = all.body.outputs[0].data;
    client = inferenceClient(`127.0.0.1:${grpcPort}`);
  });
  after(async () => {
    client?.close();
    await t?.cleanup();
  });

  const stats = async () => (await getJson(`${t.url}/v2/models/b1/stats`)).body.model_stats[0];

  it('answers concurrent HTTP and gRPC clients each with its own prediction, in far fewer runs than requests', async () => {
    const before = await stats();
    const json = (i: number) =>
      postJson(`${t.url}/v2/models/b1/infer`, {
        id: `j${i}`,
        inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64], data: records[i]!.inputs.pixels }],
        outputs: [{ name: 'label' }],
      }).then((answer) => {
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.body.id, `j${i}`);
        return answer.body.outputs[0].data[0] as number;
      });
    const binary = async (i: number) => {
      const header = Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'pixels', datatype: 'FP32', shape: [1, 64], parameters: { binary_data_size: 256 } },
          ],
          outputs: [{ name: 'label', parameters: { binary_data: true } }],
        }),
      );
      const response = await fetch(`${t.url}/v2/models/b1/infer`, {
        method: 'POST',
        headers: {
          'inference-header-content-length': String(header.length),
          'content-type': 'application/octet-stream',
        },
        body: Buffer.concat([header, Buffer.from(Float32Array.from(records[i]!.inputs.pixels).buffer)]),
      });
      assert.equal(response.status, 200);
      const bytes = Buffer.from(await response.arrayBuffer());
      const length = Number(response.headers.get('inference-header-content-length'));
      return Number(bytes.readBigInt64LE(length));
    };
    const viaGrpc = async (i: number) => {
      const response = await call(client, 'ModelInfer', {
        model_name: 'b1',
        inputs: [
          {
            name: 'pixels',
            datatype: 'FP32',
            shape: [1, 64],
            contents: { fp32_contents: records[i]!.inputs.pixels },
          },
        ],
        outputs: [{ name: 'label' }],
      });
      return Number(Buffer.from(response.raw_output_contents[0]).readBigInt64LE(0));
    };
    const senders = [json, binary, viaGrpc];
    const rounds = 3;
    const answers = await Promise.all(
      Array.from({ length: rounds * records.length }, (_, n) => {
        const i = n % records.length;
        return senders[n % senders.length]!(i).then((label) => ({ label, i }));
      }),
    );
    for (const { label, i } of answers) assert.equal(label, expected[i], `record ${i}`);

    const after = await stats();
    const requests = after.inference_stats.success.count - before.inference_stats.success.count;
    const executions = after.execution_count - before.execution_count;
    assert.equal(requests, rounds * records.length);
    assert.equal(after.inference_count - before.inference_count, rounds * records.length, 'one row each');
    assert.ok(executions < requests / 2, `${executions} runs for ${requests} requests`);
    assert.ok(
      after.batch_stats.some((b: any) => b.batch_size > 1),
      'some runs took several requests',
    );
  });

  it('reports the batching in force over HTTP and gRPC', async () => {
    const http = (await getJson(`${t.url}/v2/models/b1/config`)).body;
    assert.equal(http.max_batch_size, 64);
    assert.deepEqual(http.input[0].dims, [64]);
    assert.equal(http.dynamic_batching.max_queue_delay_microseconds, 0);
    const { config } = await call(client, 'ModelConfig', { name: 'b1' });
    assert.equal(config.max_batch_size, 64);
    assert.deepEqual(config.input[0].dims, [64]);
    assert.ok(config.dynamic_batching, 'gRPC carries dynamic_batching');
    assert.equal(Number(config.dynamic_batching.max_queue_delay_microseconds), 0);
    assert.equal(config.parameters.dynamic_batching_delay.string_value, 'adaptive');
  });
});
