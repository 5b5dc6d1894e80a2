/**
 * Reading files of the model and dataset stores safely: a path is resolved to its real
 * location (symlinks followed) and refused when that is outside the store's root, so a
 * link to /etc/shadow in a store is never read; and a file that is not JSON is named,
 * never quoted (V8's parse errors carry a snippet of the text).
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError, errorMessage } from '../errors.js';

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

/** Whether an error is a file system "no such file". */
export function isMissing(error: unknown): boolean {
  return (
    (error as NodeJS.ErrnoException)?.code === 'ENOENT' ||
    (error as NodeJS.ErrnoException)?.code === 'ENOTDIR'
  );
}

/** Parse JSON text; a failure says where, never what the text holds. */
export function parseJsonQuietly(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const position = /position (\d+)/.exec(errorMessage(error))?.[1];
    throw new InvalidInputError(
      `${what} is not JSON${position === undefined ? '' : ` (at character ${position})`}`,
    );
  }
}
