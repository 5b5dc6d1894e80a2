/**
 * TEMP on a server without modeldock's batch endpoint (a foreign serving runtime): the
 * router reads the dataset and sends it through the protocol's infer calls in batches,
 * shaped by the model's metadata, and reports count and accuracy as the worker's batch
 * endpoint does.
 */
import { inferDatasetInBatches, type BatchOutput, type TensorShape } from '../dataset-batches.js';
import { InvalidInputError } from '../errors.js';
import type { BatchResult } from '../runtime/worker-client.js';
import type { JobRequest, LifecycleDeps } from './lifecycle-types.js';

interface ModelMetadata {
  inputs?: TensorShape[];
  outputs?: TensorShape[];
}

export async function datasetThroughInfer(
  deps: Pick<LifecycleDeps, 'workers' | 'catalog'>,
  endpoint: string,
  request: JobRequest,
): Promise<BatchResult> {
  // The job's model is served under the job's name (docs/runtimes.md).
  const name = request.jobId;
  const metadata = await deps.workers.modelJson<ModelMetadata>(
    endpoint,
    `/v2/models/${encodeURIComponent(name)}`,
  );
  if (!metadata.inputs?.length || !metadata.outputs?.length) {
    throw new InvalidInputError(
      `model ${request.model}: its server states no inputs or outputs in its metadata, so a dataset cannot be shaped for it; declare them in the server's model configuration`,
    );
  }
  const [dataset, manifest] = await Promise.all([
    deps.catalog.readDataset(request.dataset),
    deps.catalog.batchManifest(request.model),
  ]);
  return inferDatasetInBatches(
    { name, modelId: request.model, inputs: metadata.inputs, outputs: metadata.outputs, manifest },
    dataset,
    async (batch) => (await deps.workers.infer(endpoint, name, batch)) as { outputs: BatchOutput[] },
  );
}
