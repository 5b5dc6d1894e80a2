/**
 * Where a worker's model and dataset files come from. One interface, one module per
 * source: a local directory (local-store-source.ts: a bind mount, hostPath or volume)
 * or the router (remote-store-source.ts: fetched into the Pod's cache, checksummed).
 * ModelStore and DatasetStore read through it, so either way they open a local file.
 */
import type { StoreKind } from '../worker-store-protocol.js';

export type { StoreKind };

export interface StoreSource {
  /**
   * The real local path of `<id>/<file>` in the store of that kind, inside the store's
   * root (a link out of it is refused), fetched first when the source is remote;
   * undefined when the store has no such file.
   */
  file(kind: StoreKind, id: string, file: string): Promise<string | undefined>;
  /** The model ids that have a model.onnx (the repository index's unloaded entries). */
  listModels(): Promise<string[]>;
  /** Where the files come from, for the worker's log line. */
  readonly description: string;
}
