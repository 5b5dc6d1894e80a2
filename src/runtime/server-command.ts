/**
 * A foreign server's command line (WorkerSpec.server) with its placeholders filled in,
 * the same way on every runtime: `{host}`, `{port}`, `{grpcPort}`, `{metricsPort}`,
 * `{modelsDir}`, `{datasetsDir}` in its arguments and environment values. A placeholder
 * without a value stays as written.
 */
import type { ServerCommand } from './runtime.js';

export function fillServerCommand(server: ServerCommand, values: Record<string, string>): ServerCommand {
  const fill = (text: string) => text.replace(/\{(\w+)\}/g, (match, name: string) => values[name] ?? match);
  return {
    command: server.command,
    args: server.args.map(fill),
    env: Object.fromEntries(Object.entries(server.env).map(([key, value]) => [key, fill(value)])),
  };
}
