/** Request schemas: each is both the validation and the TypeScript type of its route. */
import { Type, type Static } from '@sinclair/typebox';

const idPattern = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

export const JobId = Type.String({ minLength: 1, maxLength: 128, description: 'Job id' });
export const ModelId = Type.String({
  minLength: 1,
  maxLength: 128,
  description: 'Model id in the model store',
});
export const DatasetId = Type.String({ minLength: 1, maxLength: 128, description: 'Dataset id' });

export const OriginalOperation = Type.Union(
  ['DEPLOY_CREATE', 'DEPLOY_LOAD', 'DEPLOY_UNLOAD', 'TERMINATE', 'TEMP'].map((v) => Type.Literal(v)),
);

/** The original POC payload, unchanged. `container_id` is optional and never trusted. */
export const OriginalRequest = Type.Object(
  {
    job_id: JobId,
    model: ModelId,
    dataset: DatasetId,
    operation_type: OriginalOperation,
    container_id: Type.Optional(Type.Union([Type.String({ maxLength: 1024 }), Type.Null()])),
  },
  { additionalProperties: true },
);
export type OriginalRequest = Static<typeof OriginalRequest>;

export const JobBody = Type.Object(
  { job_id: JobId, model: ModelId, dataset: DatasetId },
  { additionalProperties: false },
);
export type JobBody = Static<typeof JobBody>;

export const TempBody = Type.Object(
  {
    job_id: JobId,
    model: ModelId,
    dataset: DatasetId,
    inputs: Type.Optional(
      Type.Array(Type.Unknown(), {
        description: 'Open Inference Protocol inputs; without them TEMP runs over the dataset',
      }),
    ),
  },
  { additionalProperties: false },
);
export type TempBody = Static<typeof TempBody>;

export const JobParams = Type.Object({ job_id: Type.String({ pattern: idPattern }) });
export type JobParams = Static<typeof JobParams>;

export const InferBody = Type.Object(
  {
    id: Type.Optional(Type.String()),
    inputs: Type.Array(Type.Unknown(), { minItems: 1 }),
    outputs: Type.Optional(Type.Array(Type.Unknown())),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type InferBody = Static<typeof InferBody>;

export const ServerQuery = Type.Object({
  job_id: Type.Optional(Type.String()),
  state: Type.Optional(Type.String()),
  kind: Type.Optional(Type.Union([Type.Literal('job'), Type.Literal('temp')])),
});
export type ServerQuery = Static<typeof ServerQuery>;

export const OperationQuery = Type.Object({
  job_id: Type.Optional(Type.String()),
  server_id: Type.Optional(Type.String()),
  type: Type.Optional(Type.String()),
  status: Type.Optional(
    Type.Union([Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed')]),
  ),
  limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
});
export type OperationQuery = Static<typeof OperationQuery>;

export const LogQuery = Type.Object({
  tail: Type.Optional(
    Type.String({ pattern: '^[0-9]{1,5}$', description: 'Lines from the end (default 100)' }),
  ),
  follow: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
});
export type LogQuery = Static<typeof LogQuery>;
