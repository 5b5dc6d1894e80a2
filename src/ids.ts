/**
 * Identifier rules shared by jobs, models and datasets. Ids end up in container names,
 * labels, URLs and file paths, so they are restricted to a safe alphabet: no slashes,
 * no leading dot, no `..`.
 */
import { InvalidInputError } from './errors.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const ID_RULE = "is not a valid id: use letters, digits, '.', '_' and '-' (at most 128, no '..')";

/** The whole rule (no `..` either) as one JSON Schema pattern, for request schemas and the OpenAPI document. */
export const ID_PATTERN_SOURCE = '^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

export function validateId(kind: 'job_id' | 'model' | 'dataset' | 'name', value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidInputError(`${kind} must be a non-empty string`);
  }
  if (!ID_PATTERN.test(value) || value.includes('..')) {
    throw new InvalidInputError(`${kind} "${value.slice(0, 140)}" ${ID_RULE}`);
  }
  return value;
}
