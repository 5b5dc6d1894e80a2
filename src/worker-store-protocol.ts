/**
 * How a worker fetches its model and dataset files from the router when it has no store
 * on a file system of its own (MODELDOCK_K8S_STORE=router): the paths, the files each
 * store may serve, and the digest headers. Shared by the router (api/routes/worker-store.ts)
 * and the worker program (worker/remote-store-source.ts), so both spell it the same way.
 *
 *   GET /worker-store/models                     the model ids (JSON list)
 *   GET /worker-store/<models|datasets>/<id>/<file>
 *     x-modeldock-worker-secret: <the worker's own secret>
 *     If-None-Match: "sha256-<hex>"              → 304 when unchanged
 *   ← 200, ETag: "sha256-<hex>", Repr-Digest: sha-256=:<base64>: (RFC 9530), the bytes
 */

export const WORKER_STORE_PREFIX = '/worker-store';

/** The worker's environment: where the router is, and the Pod's cache directory. */
export const STORE_URL_ENV = 'MODELDOCK_STORE_URL';
export const STORE_CACHE_DIR_ENV = 'MODELDOCK_STORE_CACHE_DIR';

export type StoreKind = 'model' | 'dataset';

/** The directory of each kind, in the router's store, in the URL and in the worker's cache. */
export const STORE_DIRS: Record<StoreKind, 'models' | 'datasets'> = { model: 'models', dataset: 'datasets' };

/** The only files of an id the endpoint serves: nothing else of the store leaves the router. */
export const STORE_FILES: Record<StoreKind, readonly string[]> = {
  model: ['model.onnx', 'model.json'],
  dataset: ['records.jsonl', 'dataset.json'],
};

/** The path of one file, below the router's base URL. */
export function storeFilePath(kind: StoreKind, id: string, file: string): string {
  return `${WORKER_STORE_PREFIX}/${STORE_DIRS[kind]}/${encodeURIComponent(id)}/${encodeURIComponent(file)}`;
}

/** A strong ETag naming the content's SHA-256 (hex). */
export function etagOf(sha256Hex: string): string {
  return `"sha256-${sha256Hex}"`;
}

/** RFC 9530 Repr-Digest for a SHA-256 (hex): `sha-256=:<base64>:`. */
export function reprDigestOf(sha256Hex: string): string {
  return `sha-256=:${Buffer.from(sha256Hex, 'hex').toString('base64')}:`;
}

/** The SHA-256 (hex) a Repr-Digest header names, undefined when it names none. */
export function sha256OfReprDigest(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(',') : header;
  const match = /(?:^|,)\s*sha-256=:([A-Za-z0-9+/]+=*):/.exec(value ?? '');
  if (!match) return undefined;
  const bytes = Buffer.from(match[1]!, 'base64');
  return bytes.length === 32 ? bytes.toString('hex') : undefined;
}

/** Whether an If-None-Match value names this ETag (or `*`). */
export function ifNoneMatchHolds(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag);
}
