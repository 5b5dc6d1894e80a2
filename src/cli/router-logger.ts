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

export function routerLogger(level: string, stdout: NodeJS.WriteStream = process.stdout): Logger {
  const options = { level, base: { service: 'modeldock-router' } };
  if (!stdout.isTTY) return pino(options);
  return pino(
    options,
    pretty({
      colorize: colourWanted(stdout, loadClientConfig().colour),
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,service',
      destination: 1,
      sync: true,
    }),
  );
}
