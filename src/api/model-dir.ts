/**
 * A model's whole directory as the router serves it to a foreign server's guard
 * (worker-store-protocol.ts: ModelDirListing): every regular file below the model's own
 * directory, with its size and SHA-256, within MODEL_DIR_LIMITS.
 *
 * Confined twice: the model's directory must really be inside the model store, and every
 * file really inside the model's directory (a link is followed only when it stays there;
 * confined-path.ts). What cannot be served whole is refused whole, with its reason: a
 * server given part of its model would fail later and less clearly.
 */
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { isMissing, realPathInside } from '../confined-path.js';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { validateId } from '../ids.js';
import {
  MODEL_DIR_LIMITS,
  modelDirRelativePath,
  type ModelDirFile,
  type ModelDirListing,
} from '../worker-store-protocol.js';
import type { StoreFiles } from './store-file.js';

/** The real path of model `id`'s directory in the store; NotFoundError when there is none. */
export async function modelDirOf(modelsDir: string, id: string): Promise<string> {
  validateId('model', id);
  try {
    const real = await realPathInside(modelsDir, id, 'model');
    if ((await stat(real)).isDirectory()) return real;
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  throw new NotFoundError(`model "${id}" has no directory in the model store`);
}

export async function listModelDir(
  modelsDir: string,
  id: string,
  files: StoreFiles,
): Promise<ModelDirListing> {
  const root = await modelDirOf(modelsDir, id);
  const store = `model "${id}"`;
  const paths: string[] = [];
  const refuse = (relative: string, why: string) =>
    new InvalidInputError(`model "${id}" cannot be served to a worker: ${relative.slice(0, 120)} ${why}`);

  const walk = async (relativeDir: string, depth: number): Promise<void> => {
    const entries: Dirent[] = await readdir(relativeDir ? `${root}/${relativeDir}` : root, {
      withFileTypes: true,
    });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const relative = relativeDir ? `${relativeDir}/${entry.name}` : entry.name;
      try {
        modelDirRelativePath(relative);
      } catch (error) {
        throw refuse(relative, `has a name or depth that is not served (${(error as Error).message})`);
      }
      let isDirectory = entry.isDirectory();
      if (entry.isSymbolicLink()) {
        // Followed only inside the model's own directory (InvalidInputError otherwise).
        const target = await stat(await realPathInside(root, relative, store));
        if (target.isDirectory())
          throw refuse(relative, 'is a link to a directory; only linked files are served');
        isDirectory = false;
        if (!target.isFile()) throw refuse(relative, 'is not a regular file');
      } else if (!isDirectory && !entry.isFile()) {
        throw refuse(relative, 'is not a regular file or directory');
      }
      if (isDirectory) {
        if (depth + 1 > MODEL_DIR_LIMITS.depth)
          throw refuse(relative, `is over ${MODEL_DIR_LIMITS.depth} levels deep`);
        await walk(relative, depth + 1);
        continue;
      }
      paths.push(relative);
      if (paths.length > MODEL_DIR_LIMITS.files) {
        throw refuse('its directory', `holds more than ${MODEL_DIR_LIMITS.files} files`);
      }
    }
  };
  await walk('', 0);

  const listed: ModelDirFile[] = [];
  let bytes = 0;
  for (const relative of paths) {
    const opened = await files.open(root, relative, store, `${store} ${relative}`);
    await opened.close();
    bytes += opened.size;
    if (bytes > MODEL_DIR_LIMITS.bytes) {
      throw refuse('its directory', `holds more than ${MODEL_DIR_LIMITS.bytes} bytes`);
    }
    listed.push({ path: relative, size: opened.size, sha256: opened.sha256 });
  }
  return { model: id, files: listed, bytes };
}
