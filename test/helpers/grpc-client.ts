/**
 * A grpc-js client of modeldock's inference.GRPCInferenceService (inference.proto), as
 * Triton's gRPC clients see it, and one unary call as a promise.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_FILE } from '../../src/inference-grpc/service-definition.js';

export type InferenceClient = grpc.Client & Record<string, (...args: any[]) => grpc.ClientUnaryCall>;

/** A client of the service at `address` (host:port), without TLS; `options`: grpc-js channel options. */
export function inferenceClient(address: string, options: grpc.ChannelOptions = {}): InferenceClient {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const Service = (grpc.loadPackageDefinition(definition) as any).inference.GRPCInferenceService;
  return new Service(address, grpc.credentials.createInsecure(), options);
}

/** One unary call: its response, or the ServiceError it failed with. */
export function unaryCall(
  client: InferenceClient,
  method: string,
  request: object,
  options: grpc.CallOptions = {},
  metadata = new grpc.Metadata(),
): Promise<any> {
  return new Promise((resolve, reject) =>
    client[method]!(request, metadata, options, (error: grpc.ServiceError | null, response: any) =>
      error ? reject(error) : resolve(response),
    ),
  );
}
