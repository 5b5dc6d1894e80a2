/**
 * `modeldock backup FILE` and `modeldock restore FILE`: a copy of the state store and
 * its return. They work on the configured store directly (MODELDOCK_DATABASE), not through
 * a router: SQLite's online backup API copies a consistent snapshot while a router runs;
 * a restore is done with the router stopped, and the next start adopts every live worker
 * the backup does not know (docs/operations.md#backups-and-restore). MongoDB has its own
 * tools for both (mongodump / mongorestore); the commands say so.
 */
import path from 'node:path';
import { ConfigError, loadConfig } from '../../config.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';

function sqliteFile(command: 'backup' | 'restore'): string {
  const store = loadConfig().store;
  if (!store.startsWith('sqlite:')) {
    const tool =
      command === 'backup'
        ? 'mongodump --uri "$MODELDOCK_DATABASE" --out DIR'
        : 'mongorestore --uri "$MODELDOCK_DATABASE" --drop DIR';
    throw new ConfigError(
      `modeldock ${command} copies a SQLite database; MODELDOCK_DATABASE is a MongoDB URL: use ${tool} (docs/operations.md#backups-and-restore)`,
    );
  }
  return path.resolve(store.slice('sqlite:'.length));
}

export async function backup(destination: string): Promise<void> {
  const file = sqliteFile('backup');
  const store = new SqliteStore(file);
  await store.init();
  try {
    await store.backup(path.resolve(destination));
  } finally {
    await store.close();
  }
  console.log(`backed up ${file} to ${path.resolve(destination)}`);
}

export async function restore(source: string): Promise<void> {
  const file = sqliteFile('restore');
  await SqliteStore.restore(path.resolve(source), file);
  console.log(
    `restored ${file} from ${path.resolve(source)}; at its next start the router adopts the workers the backup does not know`,
  );
}
