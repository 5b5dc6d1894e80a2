/**
 * Who asked for the operation running now. The API runs each request's handler inside
 * `asCaller` (one wrapper for every route, see api/auth-hook.ts), and the operation
 * recorder reads `currentCaller()`, so no operation signature has to carry it. Work the
 * router starts itself (idle unload, reconcile, restarts) runs outside any request and is
 * recorded as `system`; work a request sets off (an LRU unload to make room) is the
 * requester's.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const context = new AsyncLocalStorage<string>();

export const SYSTEM_CALLER = 'system';

export function asCaller<T>(callerId: string, work: () => T): T {
  return context.run(callerId, work);
}

export function currentCaller(): string {
  return context.getStore() ?? SYSTEM_CALLER;
}
