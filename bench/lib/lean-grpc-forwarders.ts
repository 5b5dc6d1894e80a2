/**
 * The two ways a router can route a gRPC ModelInfer to a worker that serves gRPC itself,
 * each as lean as it can be (grpc-js, no routing table, no metrics, no error mapping),
 * for the routing benchmark to tell which costs less on this machine:
 *
 * - `translate`: decode the request, send it on as the worker's HTTP binary tensor
 *   request (undici `dispatch`, what the router does), and encode the answer;
 * - `forward`: pass the request's bytes on over gRPC unchanged (a grpc-js client with
 *   identity serializers: no protobuf decode or encode at all) and its answer's back.
 *
 * Baselines, not products: what each way cannot go below.
 *
 *   node --import tsx bench/lib/lean-grpc-forwarders.ts <translate|forward> <port> <worker origin> <model> <secret>
 */
import * as grpc from '@grpc/grpc-js';
import { Pool } from 'undici';
import { fromWorkerInferAnswer, toWorkerInferBody } from '../../src/inference-grpc/infer-translation.js';
import { loadInferenceService } from '../../src/inference-grpc/service-definition.js';

const [mode, port, upstream, model, secret] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const service = loadInferenceService();
const infer = service.ModelInfer!;
const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
const identity = (value: Buffer) => value;

if (mode === 'translate') {
  const pool = new Pool(upstream, { connections: 64, pipelining: 1 });
  server.addService(
    { ModelInfer: infer },
    {
      ModelInfer: (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
        const { body, headerLength } = toWorkerInferBody(call.request);
        const chunks: Buffer[] = [];
        let headers: Record<string, string | string[] | undefined> = {};
        pool.dispatch(
          {
            method: 'POST',
            path: `/v2/models/${model}/infer`,
            headers: {
              'content-type': 'application/octet-stream',
              'inference-header-content-length': String(headerLength),
              'x-modeldock-worker-secret': secret,
            },
            body,
          },
          {
            onRequestStart() {},
            onResponseStart(_c, _status, responseHeaders) {
              headers = responseHeaders;
            },
            onResponseData(_c, chunk) {
              chunks.push(chunk);
            },
            onResponseEnd() {
              const length = Number(headers['inference-header-content-length']);
              callback(null, fromWorkerInferAnswer(Buffer.concat(chunks), length));
            },
            onResponseError(_c, error) {
              callback({ code: grpc.status.UNAVAILABLE, details: String(error) });
            },
          },
        );
      },
    },
  );
} else {
  const client = new grpc.Client(new URL(upstream).host, grpc.credentials.createInsecure(), {
    'grpc.enable_channelz': 0,
  });
  const metadata = new grpc.Metadata();
  metadata.set('x-modeldock-worker-secret', secret);
  server.addService(
    { ModelInfer: { ...infer, requestDeserialize: identity, responseSerialize: identity } },
    {
      ModelInfer: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        client.makeUnaryRequest(infer.path, identity, identity, call.request, metadata, callback);
      },
    },
  );
}
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) throw error;
  process.send?.('listening');
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
