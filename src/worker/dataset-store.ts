/**
 * The dataset store: `<datasets>/<id>/records.jsonl`, one JSON object per line, one
 * sample per line:
 *   {"inputs": {"<input name>": [values of one sample, flat or nested]}, "label": <class>}
 * `inputs` may also be a list, one entry per model input in the model's input order.
 * `label` (a number or a string) is optional; with it, batch inference reports accuracy.
 * `dataset.json` beside it is optional metadata (description, source, licence); when
 * present it must be a JSON object.
 */
import { readFile } from 'node:fs/promises';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { validateId } from '../ids.js';
import { LocalStoreSource } from './local-store-source.js';
import type { StoreSource } from './store-source.js';
import { parseJsonQuietly } from './store-files.js';
import { parseRecords, type Dataset } from '../dataset-batches.js';

// The record format is shared with the router, which runs datasets through foreign servers.
export { parseRecords, type Dataset, type DatasetRecord } from '../dataset-batches.js';

export class DatasetStore {
  private readonly source: StoreSource;

  /** `source`: a StoreSource, or the datasets directory. */
  constructor(source: StoreSource | string) {
    this.source = typeof source === 'string' ? new LocalStoreSource(source, source) : source;
  }

  async read(datasetId: string): Promise<Dataset> {
    validateId('dataset', datasetId);
    // Real paths inside the store only (the source refuses a link out of it).
    const read = async (file: string): Promise<string | undefined> => {
      const real = await this.source.file('dataset', datasetId, file);
      return real === undefined ? undefined : readFile(real, 'utf8');
    };
    const text = await read('records.jsonl');
    if (text === undefined) {
      throw new NotFoundError(`dataset "${datasetId}" not found (no ${datasetId}/records.jsonl)`);
    }
    const metadataText = await read('dataset.json');
    return {
      id: datasetId,
      metadata: metadataText === undefined ? {} : parseMetadata(datasetId, metadataText),
      records: parseRecords(datasetId, text),
    };
  }
}

export function parseMetadata(datasetId: string, text: string): Record<string, unknown> {
  const parsed = parseJsonQuietly(text, `dataset "${datasetId}": dataset.json`);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidInputError(`dataset "${datasetId}": dataset.json must be a JSON object`);
  }
  return parsed as Record<string, unknown>;
}
