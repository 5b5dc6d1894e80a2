/** Request schemas: each is both the validation and the TypeScript type of its route. */
import { Type, type Static } from '@sinclair/typebox';
import { ID_PATTERN_SOURCE } from '../ids.js';
import { OPERATION_TYPES, SERVER_STATES } from '../store/records.js';

// The same rule validateId enforces, so the schema (and the OpenAPI document) say exactly what is accepted.
const id = (description: string) =>
  Type.String({ minLength: 1, maxLength: 128, pattern: ID_PATTERN_SOURCE, description });

export const JobId = id('Job id');
export const ModelId = id('Model id in the model store');
export const DatasetId = id('Dataset id');

export const OriginalOperation = Type.Union(
  ['DEPLOY_CREATE', 'DEPLOY_LOAD', 'DEPLOY_UNLOAD', 'TERMINATE', 'TEMP'].map((v) => Type.Literal(v)),
);

/** How many servers a job may have; the router scales between them (default 1/1). */
export const Replicas = Type.Object(
  {
    min: Type.Integer({
      minimum: 0,
      maximum: 64,
      description: 'Fewest replicas; 0 lets an idle job scale to zero',
    }),
    max: Type.Integer({ minimum: 1, maximum: 64, description: 'Most replicas the autoscaler may start' }),
  },
  { additionalProperties: false, description: 'Replicas of the job (default {"min": 1, "max": 1})' },
);

export const ScaleTarget = Type.Union([
  Type.Number({
    exclusiveMinimum: 0,
    maximum: 10_000,
    description: 'In-flight requests per replica the autoscaler aims at (default MODELDOCK_SCALE_TARGET)',
  }),
  Type.Null(),
]);

export const PlacementField = Type.Union([Type.Literal('dedicated'), Type.Literal('shared')], {
  description:
    "Where the job's servers live: a worker each (dedicated) or loaded into a shared worker with other jobs' models (shared); default MODELDOCK_PLACEMENT",
});

/**
 * The original POC payload, unchanged. `container_id` is optional and never trusted;
 * `replicas`, `scale_target` and `placement` are optional extra fields (DEPLOY_CREATE;
 * `placement` for TEMP too).
 */
export const OriginalRequest = Type.Object(
  {
    job_id: JobId,
    model: ModelId,
    dataset: DatasetId,
    operation_type: OriginalOperation,
    container_id: Type.Optional(Type.Union([Type.String({ maxLength: 1024 }), Type.Null()])),
    replicas: Type.Optional(Replicas),
    scale_target: Type.Optional(ScaleTarget),
    placement: Type.Optional(PlacementField),
  },
  { additionalProperties: true },
);
export type OriginalRequest = Static<typeof OriginalRequest>;

export const JobBody = Type.Object(
  {
    job_id: JobId,
    model: ModelId,
    dataset: DatasetId,
    replicas: Type.Optional(Replicas),
    scale_target: Type.Optional(ScaleTarget),
    placement: Type.Optional(PlacementField),
  },
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
    placement: Type.Optional(PlacementField),
  },
  { additionalProperties: false },
);
export type TempBody = Static<typeof TempBody>;

export const JobParams = Type.Object({ job_id: JobId });
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

const stateNames = SERVER_STATES.join('|');

export const ServerQuery = Type.Object({
  job_id: Type.Optional(Type.String()),
  state: Type.Optional(
    Type.String({
      pattern: `^ *(${stateNames}) *(, *(${stateNames}) *)*$`,
      description: 'One state or several, comma-separated',
    }),
  ),
  kind: Type.Optional(Type.Union([Type.Literal('job'), Type.Literal('temp')])),
});
export type ServerQuery = Static<typeof ServerQuery>;

export const OperationQuery = Type.Object({
  job_id: Type.Optional(Type.String()),
  server_id: Type.Optional(Type.String()),
  type: Type.Optional(Type.Union(OPERATION_TYPES.map((t) => Type.Literal(t)))),
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
