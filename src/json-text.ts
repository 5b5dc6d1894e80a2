/**
 * JSON from the stores, parsed so that a failure names the file and the position but
 * never quotes the text (V8's parse errors carry a snippet of it).
 */
import { InvalidInputError, errorMessage } from './errors.js';

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
