/**
 * The guard's one route of its own (src/guard-repository-protocol.ts): a pooled foreign
 * server starts with an empty model repository, and when the router hands it to a job it
 * asks the guard to link the job's model in, under the job's name, before loading it
 * through the server's repository extension. The guard, not the router, makes the link,
 * because only it sees the server's file system on every runtime (a container's
 * repository is a tmpfs of its own). Behind the worker secret like every other call
 * (guard.ts checks it first); the model must be a directory inside the model store
 * (links out of it are refused). guard.ts loads this module only when the route is called.
 *
 * Where no store is mounted (the router's store on Kubernetes), the guard fetches the
 * model's directory from the router into the repository instead (model-dir-fetch.ts).
 */
import { lstat, rm, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { isMissing, realPathInside } from '../confined-path.js';
import { InvalidInputError, errorMessage, isModeldockError } from '../errors.js';
import { validateId } from '../ids.js';
import { ModelDirFetchError, fetchModelDir, type ModelDirSource } from './model-dir-fetch.js';

export interface RepositoryLinks {
  /** The server's model repository (its `{modelsDir}`). */
  repository: string;
  /** The model store as the guard sees it; empty (and no `fetch`): this guard links nothing (404). */
  store: string;
  /** The router's store, where none is mounted: models are fetched from it, not linked. */
  fetch?: ModelDirSource;
}

/** `PUT <GUARD_REPOSITORY_PATH>/<name>` with `{"model": "<id>"}`: the status and body to answer. */
export async function linkRequest(
  links: RepositoryLinks | undefined,
  rawName: string,
  body: Buffer,
): Promise<{ status: number; body: unknown }> {
  if (!links?.store && !links?.fetch) {
    return { status: 404, body: { error: 'this server was started for one model: nothing to link' } };
  }
  try {
    const name = validateId('name', decodeName(rawName));
    const model = validateId('model', modelOf(body));
    if (links.fetch) {
      const fetched = await fetchModelDir(links.fetch, model, path.join(links.repository, name));
      return { status: 200, body: { name, model, ...fetched } };
    }
    await linkModel(links, name, model);
    return { status: 200, body: { name, model } };
  } catch (error) {
    if (error instanceof ModelDirFetchError) return { status: error.status, body: { error: error.message } };
    if (isMissing(error)) return { status: 404, body: { error: 'model not found in the model store' } };
    if (isModeldockError(error) && error.code === 'invalid_input') {
      return { status: 400, body: { error: error.message } };
    }
    throw error;
  }
}

function decodeName(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new InvalidInputError('the name in the path is not valid percent-encoding');
  }
}

/** `{"model": "<id>"}` from the raw body (the guard parses no bodies of its own). */
function modelOf(body: Buffer): unknown {
  try {
    return (JSON.parse(body.toString('utf8')) as { model?: unknown }).model;
  } catch (error) {
    throw new InvalidInputError(`the body must be {"model": "<id>"}: ${errorMessage(error)}`);
  }
}

/** `<repository>/<name>` becomes a link to the model's directory; an earlier link of that name is replaced. */
async function linkModel(links: RepositoryLinks, name: string, model: string): Promise<void> {
  const target = await realPathInside(links.store, model, 'model');
  if (!(await stat(target)).isDirectory()) throw new InvalidInputError(`model ${model} is not a directory`);
  const link = path.join(links.repository, name);
  const existing = await lstat(link).catch(() => undefined);
  if (existing && !existing.isSymbolicLink()) {
    throw new InvalidInputError(`${name} is in the repository already and is not a link`);
  }
  await rm(link, { force: true });
  await symlink(target, link, 'dir');
}
