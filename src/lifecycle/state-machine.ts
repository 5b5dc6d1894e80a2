/**
 * Server states and the transitions between them (docs/operations.md, "States"):
 * creating → loading → ready ⇄ unloading → unloaded, → terminating → terminated,
 * and failed (with a reason) from anywhere. Recovery paths (failed → creating/loading)
 * let DEPLOY_LOAD heal a server in place.
 */
import type { ServerState } from '../store/records.js';

const TRANSITIONS: Record<ServerState, readonly ServerState[]> = {
  creating: ['creating', 'loading', 'terminating', 'failed'],
  loading: ['loading', 'creating', 'ready', 'unloaded', 'terminating', 'failed'],
  ready: ['unloading', 'loading', 'creating', 'terminating', 'failed'],
  unloading: ['unloaded', 'ready', 'creating', 'terminating', 'failed'],
  unloaded: ['loading', 'creating', 'terminating', 'failed'],
  terminating: ['terminated', 'failed'],
  terminated: [],
  failed: ['creating', 'loading', 'terminating', 'failed'],
};

export function canTransition(from: ServerState, to: ServerState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** States in which a server holds (or is about to hold) a worker. */
export const LIVE_STATES: readonly ServerState[] = [
  'creating',
  'loading',
  'ready',
  'unloading',
  'unloaded',
  'terminating',
  'failed',
];

/** States only seen while an operation is in flight; found at start-up they mean a crash. */
export const TRANSIENT_STATES: readonly ServerState[] = ['creating', 'loading', 'unloading', 'terminating'];
