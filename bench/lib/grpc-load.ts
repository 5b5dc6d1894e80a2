/**
 * gRPC load for the routing benchmark: a grpc-js client of modeldock's
 * inference.GRPCInferenceService sending the same one-digit ModelInfer request (raw
 * FP32 bytes, output `label`), sequentially for latency or with a fixed number of calls
 * in flight for throughput, and an undici equivalent for HTTP so both protocols are
 * loaded by the same kind of generator.
 */
import * as grpc from '@grpc/grpc-js';
import { Pool } from 'undici';
import { inferenceClient } from '../../test/helpers/grpc-client.js';

type InferClient = grpc.Client & {
  ModelInfer: (
    request: object,
    metadata: grpc.Metadata,
    callback: (error: grpc.ServiceError | null, response: any) => void,
  ) => void;
};

export interface Sender {
  send(): Promise<void>;
  close(): Promise<void>;
}

/** `metadata`: sent with every call (a worker's secret, straight to the worker). */
export function grpcSender(
  address: string,
  model: string,
  pixels: number[],
  metadata: Record<string, string> = {},
): Sender {
  const client = inferenceClient(address, { 'grpc.enable_channelz': 0 }) as unknown as InferClient;
  const sent = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata)) sent.set(key, value);
  const request = {
    model_name: model,
    inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 64] }],
    outputs: [{ name: 'label' }],
    raw_input_contents: [Buffer.from(Float32Array.from(pixels).buffer)],
  };
  return {
    send: () =>
      new Promise<void>((resolve, reject) =>
        client.ModelInfer(request, sent, (error, response) => {
          if (error) reject(error);
          else if (response.outputs[0]?.name !== 'label') reject(new Error('no label in the answer'));
          else resolve();
        }),
      ),
    close: async () => client.close(),
  };
}

/** HTTP with the binary tensor extension, as the router sends a gRPC request on to the worker. */
export function binaryHttpSender(
  origin: string,
  path: string,
  pixels: number[],
  connections = 1,
  extraHeaders: Record<string, string> = {},
): Sender {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: 256 } }],
      outputs: [{ name: 'label', parameters: { binary_data: true } }],
    }),
  );
  const body = Buffer.concat([header, Buffer.from(Float32Array.from(pixels).buffer)]);
  const pool = new Pool(origin, { connections });
  return {
    send: async () => {
      const response = await pool.request({
        method: 'POST',
        path,
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(header.length),
          ...extraHeaders,
        },
        body,
      });
      await response.body.arrayBuffer();
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`);
    },
    close: () => pool.close(),
  };
}

/** Per-request latencies in ms of `count` sequential requests after `warmUp` unmeasured ones. */
export async function sequentialLatency(sender: Sender, count: number, warmUp = 300): Promise<number[]> {
  for (let i = 0; i < warmUp; i++) await sender.send();
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await sender.send();
    samples.push(performance.now() - started);
  }
  return samples;
}

/** Requests per second with `concurrency` requests always in flight, for `seconds` (after a 1 s warm-up). */
export async function closedLoopThroughput(
  sender: Sender,
  concurrency: number,
  seconds: number,
): Promise<number> {
  const run = async (ms: number) => {
    let done = 0;
    const until = performance.now() + ms;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < until) {
          await sender.send();
          done++;
        }
      }),
    );
    return done;
  };
  await run(1000);
  const started = performance.now();
  const done = await run(seconds * 1000);
  return done / ((performance.now() - started) / 1000);
}
