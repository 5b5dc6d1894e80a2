/** The state the lifecycle's parts share, one per Lifecycle (lifecycle.ts builds it). */
import type { KeyedMutex } from '../keyed-mutex.js';
import type { CreationGate } from './creation-gate.js';
import type { LifecycleDeps } from './lifecycle-types.js';
import type { RouteTable } from './route-table.js';
import type { ServerSteps } from './server-steps.js';
import type { SharedFleet } from './shared-fleet.js';

/**
 * What every operation and the routing work with: one per Lifecycle. Operations on one
 * job are serialized by `locks` (different jobs run in parallel).
 */
export interface LifecycleContext {
  readonly deps: LifecycleDeps;
  readonly locks: KeyedMutex;
  readonly routes: RouteTable;
  readonly creations: CreationGate;
  readonly servers: ServerSteps;
  readonly fleet: SharedFleet;
  /** Operations this process is running; a `running` record not in here was interrupted. */
  readonly activeOperations: Set<string>;
}
