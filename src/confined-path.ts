/**
 * Paths inside a store's root, and nowhere else: a path is resolved to its real location
 * (symlinks followed) and refused when that is outside the root, so a link to /etc/shadow
 * in a store is never read. The worker reads its stores this way (worker/store-files.ts)
 * and the router serves them to workers the same way (api/routes/worker-store.ts).
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError } from './errors.js';

/**
 * The real path of `relative` below `root`. Throws InvalidInputError when it resolves
 * outside the root; a missing file rejects with the file system's ENOENT error.
 */
export async function realPathInside(root: string, relative: string, store: string): Promise<string> {
  const realRoot = await realpath(root);
  const real = await realpath(path.join(root, relative));
  if (real !== realRoot && !real.startsWith(`${realRoot}${path.sep}`)) {
    throw new InvalidInputError(
      `${relative} resolves outside the ${store} store; links out of it are refused`,
    );
  }
  return real;
}

/**
 * The real path of a regular file below `root` (realPathInside, then checked): a FIFO,
 * device or directory in a store is refused with InvalidInputError instead of being
 * opened, since opening a FIFO for reading blocks until something writes to it, and a
 * request would hang on it. The check does not open the file.
 */
export async function regularFileInside(root: string, relative: string, store: string): Promise<string> {
  const real = await realPathInside(root, relative, store);
  if (!(await stat(real)).isFile()) {
    throw new InvalidInputError(`${relative} is not a regular file in the ${store} store`);
  }
  return real;
}

/** Whether an error is a file system "no such file". */
export function isMissing(error: unknown): boolean {
  return (
    (error as NodeJS.ErrnoException)?.code === 'ENOENT' ||
    (error as NodeJS.ErrnoException)?.code === 'ENOTDIR'
  );
}
