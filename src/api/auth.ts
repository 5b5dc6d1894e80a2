/**
 * API keys and scopes, framework-free: the HTTP hook (auth-hook.ts), the inference hot
 * path and the gRPC service all ask `KeyRing.authorize` with the `Authorization` value
 * they received, so there is one rule for every door.
 *
 * Keys are compared in constant time: the presented key and every configured key are
 * hashed (SHA-256, so lengths match) and compared with `timingSafeEqual`, all of them,
 * without stopping at the first match. A caller is named by a key id, a short
 * fingerprint of its key, never the key.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import type { KeySet } from '../config.js';

/** `admin`: everything. `infer`: inference, model metadata, repository index. */
export type Scope = 'admin' | 'infer';

/** What a route asks of its caller. `authenticated`: any valid key, whatever its scope. */
export type Access = 'open' | 'authenticated' | Scope;

export interface Caller {
  /** `key-<12 hex>` (a fingerprint of the key), or `anonymous` when no key is asked for. */
  id: string;
  scope: Scope;
}

export const ANONYMOUS: Caller = Object.freeze({ id: 'anonymous', scope: 'admin' });

export type AuthDecision = { ok: true; caller: Caller } | { ok: false; status: 401 | 403; message: string };

interface Entry {
  digest: Buffer;
  caller: Caller;
}

export function keyDigest(key: string): Buffer {
  // One-shot `hash` (no Hash object): this runs once per request on the inference hot path.
  return hash('sha256', key, 'buffer');
}

/** The id a key is known by in records and logs: a fingerprint, useless to a thief. */
export function keyId(key: string): string {
  return `key-${keyDigest(key).toString('hex').slice(0, 12)}`;
}

const BEARER = /^Bearer +(\S+) *$/i;

export class KeyRing {
  private entries: Entry[] = [];

  /** `keys` undefined: no key is asked for and every caller is `anonymous`. */
  constructor(keys?: KeySet) {
    this.enabled = keys !== undefined;
    if (keys) this.replace(keys);
  }

  readonly enabled: boolean;

  /** Swap in a new set of keys (SIGHUP re-read); requests in flight keep their decision. */
  replace(keys: KeySet): void {
    const entry = (key: string, scope: Scope): Entry => ({
      digest: keyDigest(key),
      caller: { id: keyId(key), scope },
    });
    this.entries = [
      ...keys.admin.map((key) => entry(key, 'admin')),
      // A key listed for both scopes is an admin key.
      ...keys.infer.filter((key) => !keys.admin.includes(key)).map((key) => entry(key, 'infer')),
    ];
  }

  get size(): number {
    return this.entries.length;
  }

  /** Who presents this `Authorization` value, if anyone we know. */
  authenticate(authorization: string | undefined): Caller | undefined {
    if (!this.enabled) return ANONYMOUS;
    const token = authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
    if (token === undefined) return undefined;
    const digest = keyDigest(token);
    let found: Caller | undefined;
    // Every entry is compared, so the time taken says nothing about which key came close.
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest)) found = entry.caller;
    }
    return found;
  }

  /** The decision for a request that needs `access`, given its `Authorization` value. */
  authorize(authorization: string | undefined, access: Access): AuthDecision {
    if (access === 'open' || !this.enabled) return { ok: true, caller: ANONYMOUS };
    const caller = this.authenticate(authorization);
    if (!caller) {
      return {
        ok: false,
        status: 401,
        message:
          authorization === undefined
            ? 'this request needs a key: send Authorization: Bearer <key>'
            : 'the key is not valid (send Authorization: Bearer <key>)',
      };
    }
    if (access === 'admin' && caller.scope !== 'admin') {
      return {
        ok: false,
        status: 403,
        message: `key ${caller.id} has the infer scope; this request needs admin`,
      };
    }
    return { ok: true, caller };
  }
}

const OPEN = new Set(['/healthz', '/readyz', '/openapi.json', '/v1/openapi.json']);

/**
 * What a route asks of its caller, from its route pattern (`/v1/jobs/:job_id`), or
 * undefined for a URL no route matches (any valid key, so a 404 reveals nothing to a
 * stranger). Unlisted routes are admin: a new route is closed until it is opened here.
 */
export function accessOf(routeUrl: string | undefined, options: { metricsPublic: boolean }): Access {
  if (routeUrl === undefined) return 'authenticated';
  if (OPEN.has(routeUrl) || routeUrl.startsWith('/v2/health/')) return 'open';
  // The console's static files hold no data: the page loads, then asks for a key when the API answers 401.
  if (routeUrl === '/ui' || routeUrl.startsWith('/ui/')) return 'open';
  // No API key: the store is served to the router's own workers, who prove it with their secret.
  if (routeUrl.startsWith('/worker-store/')) return 'open';
  if (routeUrl === '/metrics') return options.metricsPublic ? 'open' : 'authenticated';
  if (routeUrl === '/v1/jobs/:job_id/infer') return 'infer';
  // Loading and unloading through the repository extension are lifecycle operations.
  if (routeUrl.startsWith('/v2/repository/models/')) return 'admin';
  if (routeUrl === '/v2' || routeUrl.startsWith('/v2/')) return 'infer';
  return 'admin';
}
