/**
 * The router's logger: JSON lines for machines (unchanged), and on a terminal the same
 * records through pino-pretty, coloured unless NO_COLOR says otherwise. pino-pretty runs
 * in-process as the destination stream (not a transport thread): a terminal is a person
 * watching, not a log shipper that needs the throughput.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { loadClientConfig } from '../config.js';
import { colourWanted } from './client/output.js';

export function routerLogger(
  level: string,
  stdout: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
  colourPreference: boolean | undefined = loadClientConfig().colour,
): Logger {
  const options = { level, base: { service: 'modeldock-router' } };
  // The process's own stdout goes through pino's fast file-descriptor writer.
  const own = stdout === process.stdout;
  if (!stdout.isTTY) return own ? pino(options) : pino(options, stdout);
  return pino(
    options,
    pretty({
      colorize: colourWanted(stdout, colourPreference),
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,service',
      destination: own ? 1 : stdout,
      sync: true,
    }),
  );
}
