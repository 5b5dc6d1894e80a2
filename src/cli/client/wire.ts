/**
 * The router's answers as the client commands read them: the router's own declarations
 * (src/api/wire-types.ts; docs/api.md has them all).
 */
export type {
  EventView,
  JobView,
  OperationView,
  OutcomeView,
  PoolView,
  ServerView,
  WorkerSampleView,
} from '../../api/wire-types.js';
