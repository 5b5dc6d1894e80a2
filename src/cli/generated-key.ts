/**
 * The admin key a router makes up for itself when it must listen on the network and was
 * given none (the router image): random, written once into the state directory with mode
 * 0600, so it survives restarts on the same volume and only root in the container (or on
 * the volume) can read it. The key itself is never logged.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Creates the key file unless it exists; true when it was created now. */
export function ensureGeneratedKey(file: string): boolean {
  mkdirSync(path.dirname(file), { recursive: true });
  try {
    // `wx`: never overwrite a key clients may already hold, even when two routers race.
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}
