/**
 * A foreign server's model directory, fetched from the router's store (the `router` store
 * on Kubernetes: MODELDOCK_K8S_STORE=router) into the server's repository by its guard:
 * before the guard starts a server for one job (guard-main.ts), or when a pooled server
 * is handed a job (guard-repository.ts). The server then loads it as it would from a
 * mounted store.
 *
 * Nothing is trusted on the way: the listing's paths are checked as the router checks
 * them (worker-store-protocol.ts), its size against this Pod's bound, and every file's
 * bytes against the size and SHA-256 listed (and the Repr-Digest sent with them). The
 * files go to a hidden directory beside the destination, renamed into place only when
 * all of them arrived whole, so a server never sees half a model; they are left
 * read-only (files 0444, directories 0555), so the server cannot change what it serves.
 *
 * On node:http alone, as the guard is (guard.ts says why).
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { validateId } from '../ids.js';
import { WORKER_SECRET_HEADER } from '../worker-secret.js';
import {
  MODEL_DIR_LIMITS,
  modelDirFilePath,
  modelDirPath,
  modelDirRelativePath,
  sha256OfReprDigest,
  type ModelDirListing,
} from '../worker-store-protocol.js';
import { writeHashed } from './hashed-write.js';

export interface ModelDirSource {
  /** The router's base URL as this Pod reaches it. */
  url: string;
  /** The worker's secret: the router serves its store to its workers only. */
  secret: string;
  /** The most this Pod's repository holds (its volume's size); a larger model is refused. */
  maxBytes: number;
  /** How long to ask again while the router does not know this worker yet; default KNOWN_WITHIN_MS. */
  knownWithinMs?: number;
}

/** Why a fetch failed, with the HTTP status the guard answers a link request with. */
export class ModelDirFetchError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Worth asking again: the router does not know this worker yet, or did not answer. */
    readonly retry = false,
  ) {
    super(message);
  }
}

const TIMEOUT_MS = 60_000;
/**
 * How long the listing is asked for again while the router does not know this worker
 * yet (401) or does not answer: a guard fetching as its Pod starts may ask before the
 * cluster reports the Pod running, and the router lets in only workers the runtime lists
 * as running (api/worker-callers.ts).
 */
const KNOWN_WITHIN_MS = 60_000;

/** Fetch `model`'s directory from the router into `destination` (replaced if present). */
export async function fetchModelDir(
  source: ModelDirSource,
  model: string,
  destination: string,
): Promise<{ files: number; bytes: number }> {
  validateId('model', model);
  const listing = await listingOnceKnown(source, model);
  const partial = path.join(path.dirname(destination), `.partial-${randomBytes(8).toString('hex')}`);
  try {
    for (const file of listing.files) {
      const target = path.join(partial, ...file.path.split('/'));
      await mkdir(path.dirname(target), { recursive: true });
      await fetchFile(source, model, file, target);
    }
    await mkdir(partial, { recursive: true });
    await readOnly(partial);
    await removeTree(destination);
    await rename(partial, destination);
  } catch (error) {
    await removeTree(partial);
    throw error;
  }
  return { files: listing.files.length, bytes: listing.bytes };
}

async function listingOnceKnown(source: ModelDirSource, model: string): Promise<ModelDirListing> {
  const deadline = Date.now() + (source.knownWithinMs ?? KNOWN_WITHIN_MS);
  for (let pause = 100; ; pause = Math.min(2 * pause, 2_000)) {
    try {
      return await listingOf(source, model);
    } catch (error) {
      if (!(error instanceof ModelDirFetchError && error.retry) || Date.now() + pause > deadline) throw error;
    }
    await delay(pause);
  }
}

async function listingOf(source: ModelDirSource, model: string): Promise<ModelDirListing> {
  const response = await get(source, modelDirPath(model), `the listing of model ${model}`);
  const text = await bodyText(response, 4 * 1024 * 1024);
  if (response.statusCode !== 200) throw refused(response.statusCode, `the listing of model ${model}`, text);
  let listing: ModelDirListing;
  try {
    listing = JSON.parse(text) as ModelDirListing;
  } catch {
    throw new ModelDirFetchError(502, `the router's listing of model ${model} is not JSON`);
  }
  if (!Array.isArray(listing?.files) || listing.files.length > MODEL_DIR_LIMITS.files) {
    throw new ModelDirFetchError(
      502,
      `the router's listing of model ${model} is not a listing of at most ${MODEL_DIR_LIMITS.files} files`,
    );
  }
  let bytes = 0;
  for (const file of listing.files) {
    try {
      modelDirRelativePath(file.path);
    } catch (error) {
      throw new ModelDirFetchError(
        502,
        `the router's listing of model ${model}: ${(error as Error).message}`,
      );
    }
    if (!Number.isSafeInteger(file.size) || file.size < 0 || !/^[0-9a-f]{64}$/.test(file.sha256)) {
      throw new ModelDirFetchError(
        502,
        `the router's listing of model ${model} gives ${file.path} no valid size and sha256`,
      );
    }
    bytes += file.size;
  }
  if (bytes > source.maxBytes) {
    throw new ModelDirFetchError(
      413,
      `model ${model} is ${bytes} bytes, more than this worker's repository holds (${source.maxBytes} bytes)`,
    );
  }
  return { ...listing, bytes };
}

async function fetchFile(
  source: ModelDirSource,
  model: string,
  file: ModelDirListing['files'][number],
  target: string,
): Promise<void> {
  const what = `model ${model} ${file.path}`;
  const response = await get(source, modelDirFilePath(model, file.path), what);
  if (response.statusCode !== 200) {
    throw refused(response.statusCode, what, await bodyText(response, 64 * 1024));
  }
  if (sha256OfReprDigest(response.headers['repr-digest']) !== file.sha256) {
    response.resume();
    throw new ModelDirFetchError(
      502,
      `${what} changed in the router's store while it was fetched: try again`,
    );
  }
  let written: { sha256: string; size: number };
  try {
    written = await writeHashed(response, target, 0o444, file.size);
  } catch (error) {
    throw new ModelDirFetchError(
      502,
      `fetching ${what} from the router broke off: ${(error as Error).message}`,
    );
  }
  if (written.size !== file.size || written.sha256 !== file.sha256) {
    throw new ModelDirFetchError(
      502,
      `${what} from the router does not match its listing (size or sha-256): refused`,
    );
  }
}

function get(source: ModelDirSource, pathname: string, what: string): Promise<IncomingMessage> {
  const url = new URL(pathname, source.url);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(url, {
      headers: { [WORKER_SECRET_HEADER]: source.secret },
      timeout: TIMEOUT_MS,
    });
    request.once('response', resolve);
    request.once('timeout', () => request.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)));
    request.once('error', (error) =>
      reject(
        new ModelDirFetchError(
          502,
          `the router's store at ${url.origin} does not answer for ${what}: ${error.message}`,
        ),
      ),
    );
  });
}

/** The router's refusal, passed on: its 4xx as they are (the model is missing or cannot be served), else 502. */
function refused(status: number | undefined, what: string, text: string): ModelDirFetchError {
  const code = status !== undefined && status >= 400 && status < 500 && status !== 401 ? status : 502;
  const reason = status === 401 ? ": the router does not know this worker's secret" : '';
  return new ModelDirFetchError(
    code,
    `the router's store answered ${status} for ${what}${reason} (${text.slice(0, 300)})`,
    status === 401 || code === 502,
  );
}

async function bodyText(response: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      response.destroy();
      throw new ModelDirFetchError(502, `the router's answer is over ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Directories 0555 (files are written 0444): the server reads its model, never changes it. */
async function readOnly(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await readOnly(path.join(dir, entry.name));
  }
  await chmod(dir, 0o555);
}

/** Remove a tree made read-only above (its owner may write its directories again first). */
async function removeTree(dir: string): Promise<void> {
  const stats = await lstat(dir).catch(() => undefined);
  if (!stats) return;
  if (!stats.isDirectory()) return rm(dir, { force: true });
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await removeTree(path.join(dir, entry.name));
  }
  await rm(dir, { recursive: true, force: true });
}
