/**
 * The KServe v2 / Triton gRPC service (`inference.GRPCInferenceService`, inference.proto)
 * as grpc-js serves it. Both programs serve it: the router (grpc-server.ts, job ids as
 * model names) and the worker (src/worker/grpc-service.ts, its loaded names).
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The service definition, shipped beside this module (the build and both images copy it). */
export const PROTO_FILE = fileURLToPath(new URL('./inference.proto', import.meta.url));

export function loadInferenceService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    inference: { GRPCInferenceService: { service: grpc.ServiceDefinition } };
  };
  return pkg.inference.GRPCInferenceService.service;
}
