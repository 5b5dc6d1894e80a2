/**
 * `POST /inference_router/`: the original POC endpoint with its payload unchanged. The
 * job's server is found by job_id; a container_id in the payload is only reported.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { JobRequest, Lifecycle, OperationOutcome } from '../../lifecycle/lifecycle.js';
import { presentOriginalOutcome } from '../presenters.js';
import { OriginalRequest } from '../schemas.js';

export function originalRoutes(lifecycle: Lifecycle): FastifyPluginAsyncTypebox {
  return async (app) => {
    const handler = async (body: OriginalRequest) => {
      const request: JobRequest = {
        jobId: body.job_id,
        model: body.model,
        dataset: body.dataset,
        containerId: body.container_id ?? null,
        ...(body.replicas ? { replicas: body.replicas } : {}),
        ...(body.placement ? { placement: body.placement } : {}),
        ...(body.scale_target === undefined ? {} : { scaleTarget: body.scale_target }),
      };
      let outcome: OperationOutcome;
      switch (body.operation_type) {
        case 'DEPLOY_CREATE':
          outcome = await lifecycle.deployCreate(request);
          break;
        case 'DEPLOY_LOAD':
          outcome = await lifecycle.deployLoad(request);
          break;
        case 'DEPLOY_UNLOAD':
          outcome = await lifecycle.deployUnload(request);
          break;
        case 'TERMINATE':
          outcome = await lifecycle.terminate(request);
          break;
        default:
          outcome = await lifecycle.temp(request);
      }
      return presentOriginalOutcome(outcome);
    };
    for (const url of ['/inference_router/', '/inference_router']) {
      app.post(
        url,
        {
          schema: {
            body: OriginalRequest,
            tags: ['original'],
            summary: 'The original POC endpoint: DEPLOY_CREATE, DEPLOY_LOAD, DEPLOY_UNLOAD, TERMINATE, TEMP',
          },
        },
        async (request) => handler(request.body),
      );
    }
  };
}
