/**
 * Reading files of the model and dataset stores safely: a path is resolved to its real
 * location (symlinks followed) and refused when that is outside the store's root, so a
 * link to /etc/shadow in a store is never read; and a file that is not JSON is named,
 * never quoted (V8's parse errors carry a snippet of the text).
 */
import { InvalidInputError, errorMessage } from '../errors.js';

// Shared with the router, which serves the same stores to workers (api/routes/worker-store.ts).
export { isMissing, realPathInside } from '../confined-path.js';

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
