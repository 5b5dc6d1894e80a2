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
 *
 * A foreign server (Triton, MLServer, an operator's own) reads its model's whole
 * directory itself, in its runtime's own layout, so a model's directory is served too,
 * to the guard in front of the server (worker/model-dir-fetch.ts):
 *
 *   GET /worker-store/model-dirs/<id>            its listing (ModelDirListing, JSON)
 *   GET /worker-store/model-dirs/<id>/<path>     one file of it, as above (ETag, Repr-Digest)
 *
 * Only regular files inside the model's own directory, within MODEL_DIR_LIMITS.
 */
import { InvalidInputError } from './errors.js';

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

/** The listing of a model's directory: every regular file in it, with its size and SHA-256. */
export interface ModelDirListing {
  model: string;
  files: ModelDirFile[];
  /** The sizes added up. */
  bytes: number;
}

export interface ModelDirFile {
  /** Relative to the model's directory, `/`-separated (MODEL_DIR_LIMITS, modelDirRelativePath). */
  path: string;
  size: number;
  sha256: string;
}

/**
 * What one model's directory may hold to be served: a store cannot make the router list,
 * nor a worker's Pod hold, more than this (the Pod's own bound is its repository volume,
 * smaller still: docs/runtime-kubernetes.md). Triton's and MLServer's layouts are a
 * handful of files a few levels deep.
 */
export const MODEL_DIR_LIMITS = {
  files: 1_000,
  depth: 8,
  bytes: 16 * 2 ** 30,
  /** Of a path relative to the model's directory. */
  pathLength: 512,
} as const;

/** A path segment served: a file or directory name, no `.`/`..`, no separators, no control characters. */
const SEGMENT = /^(?!\.{1,2}$)[^/\\\p{Cc}]{1,255}$/u;

/**
 * `relative` if it names a file inside a model's directory (`a/b/c`, at most
 * MODEL_DIR_LIMITS.depth directories deep), else InvalidInputError: the router applies it
 * to what it is asked for, the guard to what a listing names.
 */
export function modelDirRelativePath(relative: unknown): string {
  if (typeof relative !== 'string' || relative.length === 0) {
    throw new InvalidInputError('a model directory path must be a non-empty string');
  }
  const segments = relative.split('/');
  if (
    relative.length > MODEL_DIR_LIMITS.pathLength ||
    segments.length > MODEL_DIR_LIMITS.depth + 1 ||
    !segments.every((segment) => SEGMENT.test(segment))
  ) {
    throw new InvalidInputError(
      `"${relative.slice(0, 80)}" is not a path inside a model directory: names separated by "/", no "." or "..", at most ${MODEL_DIR_LIMITS.depth} directories deep`,
    );
  }
  return relative;
}

export const MODEL_DIRS = 'model-dirs';

/** The listing of a model's directory, below the router's base URL. */
export function modelDirPath(id: string): string {
  return `${WORKER_STORE_PREFIX}/${MODEL_DIRS}/${encodeURIComponent(id)}`;
}

/** One file of a model's directory, below the router's base URL. */
export function modelDirFilePath(id: string, relative: string): string {
  return `${modelDirPath(id)}/${relative.split('/').map(encodeURIComponent).join('/')}`;
}

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
