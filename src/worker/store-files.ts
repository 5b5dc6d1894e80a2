/**
 * Reading files of the model and dataset stores safely: a path is resolved to its real
 * location (symlinks followed) and refused when that is outside the store's root, so a
 * link to /etc/shadow in a store is never read; and a file that is not JSON is named,
 * never quoted (V8's parse errors carry a snippet of the text).
 */
// Shared with the router, which serves the same stores to workers (api/routes/worker-store.ts).
export { isMissing, realPathInside, regularFileInside } from '../confined-path.js';

// Shared with the router, which reads dataset records for foreign servers (dataset-batches.ts).
export { parseJsonQuietly } from '../json-text.js';
