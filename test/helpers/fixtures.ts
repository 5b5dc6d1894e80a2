/** Shared test data: the original README's request bodies and the ds-550 digits. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DATASETS_DIR, REPO_ROOT } from './paths.js';

/** The five request bodies of the original README, byte for byte (create, load, unload, terminate, temp). */
export const ORIGIN_REQUESTS = (
  JSON.parse(readFileSync(path.join(REPO_ROOT, 'test/fixtures/origin-requests.json'), 'utf8')) as {
    requests: [string, string, string, string, string];
  }
).requests;

export interface DigitRecord {
  inputs: { pixels: number[] };
  label: number;
}

/** The records of ds-550, in file order. */
export const DIGITS: DigitRecord[] = readFileSync(path.join(DATASETS_DIR, 'ds-550/records.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as DigitRecord);
