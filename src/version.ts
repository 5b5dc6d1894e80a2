/** The router's version, as package.json says (read once at start-up). */
import { readFileSync } from 'node:fs';

/** `../package.json` from src/ or dist/; `./package.json` beside a bundle in an image. */
function readVersion(): string {
  for (const candidate of ['../package.json', './package.json']) {
    try {
      const url = new URL(candidate, import.meta.url);
      const version = (JSON.parse(readFileSync(url, 'utf8')) as { version?: string }).version;
      if (version) return version;
    } catch {
      // try the next place
    }
  }
  return '0.0.0';
}

export const VERSION = readVersion();
