/**
 * The router's readiness: its store and its runtime answer. One answer for every way it is
 * asked: `/readyz`, the protocol's `/v2/health/ready` and gRPC `ServerReady`, so a load
 * balancer, a Kubernetes probe and a Triton client all see the same thing.
 *
 * All three are open, so asking the engine and the store on every call would let anyone
 * hammer them through the router (issue #27: 200 /readyz calls were 200 engine calls).
 * The answer is at most READY_CHECK_MS old, and callers while a check runs share it.
 */
import { errorMessage } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Store } from '../store/store.js';

/** How long the runtime may take to answer a readiness check before it counts as away. */
const RUNTIME_PING_TIMEOUT_MS = 2_000;

/** How old a readiness answer may be (ms). */
export const READY_CHECK_MS = 2_000;

export interface ReadinessCheck {
  name: 'store' | 'runtime';
  ok: boolean;
  message?: string;
}

export interface Readiness {
  ready: boolean;
  checks: ReadinessCheck[];
}

export type ReadinessProbe = () => Promise<Readiness>;

export function readinessProbe(deps: {
  store: Pick<Store, 'ping'>;
  runtime: Pick<Runtime, 'ping'>;
}): ReadinessProbe {
  const check = (name: ReadinessCheck['name'], ping: Promise<unknown>): Promise<ReadinessCheck> =>
    ping.then(
      () => ({ name, ok: true }),
      (error: unknown) => ({ name, ok: false, message: errorMessage(error) }),
    );
  const probe = async (): Promise<Readiness> => {
    const checks = await Promise.all([
      check('store', deps.store.ping()),
      check('runtime', deps.runtime.ping(AbortSignal.timeout(RUNTIME_PING_TIMEOUT_MS))),
    ]);
    return { ready: checks.every((c) => c.ok), checks };
  };
  let last: { at: number; answer: Promise<Readiness> } | undefined;
  return () => {
    const now = performance.now();
    if (!last || now - last.at >= READY_CHECK_MS) last = { at: now, answer: probe() };
    return last.answer;
  };
}
