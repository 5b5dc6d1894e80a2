/**
 * The dataset store: `<datasets>/<id>/records.jsonl`, one JSON object per line:
 *   {"inputs": {"<input name>": [values of one sample, flat or nested]}, "label": <class>}
 * `label` is optional; with it, batch inference reports accuracy. `dataset.json` beside
 * it is optional metadata (description, source, licence).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidInputError, NotFoundError, errorMessage } from '../errors.js';
import { validateId } from '../ids.js';

export interface DatasetRecord {
  inputs: Record<string, unknown>;
  label?: number | string;
}

export class DatasetStore {
  constructor(private readonly dir: string) {}

  async read(datasetId: string): Promise<DatasetRecord[]> {
    validateId('dataset', datasetId);
    const file = path.join(this.dir, datasetId, 'records.jsonl');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      throw new NotFoundError(`dataset "${datasetId}" not found (no ${datasetId}/records.jsonl)`);
    }
    const records: DatasetRecord[] = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (error) {
        throw new InvalidInputError(
          `dataset "${datasetId}" line ${i + 1} is not JSON: ${errorMessage(error)}`,
        );
      }
      const record = parsed as DatasetRecord;
      if (
        typeof record !== 'object' ||
        record === null ||
        typeof record.inputs !== 'object' ||
        record.inputs === null
      ) {
        throw new InvalidInputError(`dataset "${datasetId}" line ${i + 1} has no "inputs" object`);
      }
      records.push(record);
    }
    if (records.length === 0) throw new InvalidInputError(`dataset "${datasetId}" has no records`);
    return records;
  }
}
