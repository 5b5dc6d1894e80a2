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

export interface DatasetRecord {
  /** By model input name, or positional in the model's input order. */
  inputs: Record<string, unknown> | unknown[];
  label?: number | string;
}

export interface Dataset {
  id: string;
  metadata: Record<string, unknown>;
  records: DatasetRecord[];
}

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

/** Parse records.jsonl; every problem names its line. Blank lines are ignored. */
export function parseRecords(datasetId: string, text: string): DatasetRecord[] {
  const records: DatasetRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const where = `dataset "${datasetId}" line ${i + 1}`;
    const parsed = parseJsonQuietly(line, where);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new InvalidInputError(`${where} is not a JSON object`);
    }
    const record = parsed as { inputs?: unknown; label?: unknown };
    if (typeof record.inputs !== 'object' || record.inputs === null) {
      throw new InvalidInputError(`${where} has no "inputs" object or list`);
    }
    if (record.label !== undefined && typeof record.label !== 'number' && typeof record.label !== 'string') {
      throw new InvalidInputError(`${where}: "label" must be a number or a string`);
    }
    records.push(record as DatasetRecord);
  }
  if (records.length === 0) throw new InvalidInputError(`dataset "${datasetId}" has no records`);
  return records;
}
