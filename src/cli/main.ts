#!/usr/bin/env node
/**
 * The modeldock command: `start` runs the router (the default), `images` builds the
 * images, and the other commands are clients of a running router's HTTP API (see
 * docs/cli.md).
 *
 * Built on yargs rather than commander: argument parsing, generated help and shell
 * completion (`modeldock completion`) come from one well-kept package with no further
 * dependencies, where commander needs a second package for completion.
 *
 * The client commands (commands/status, actions, logs, top) import only the HTTP client
 * and the output helpers: they never load the router, its runtimes or its stores.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, loadClientConfig } from '../config.js';
import { VERSION } from '../version.js';
import { ApiClient, CliError } from './client/api-client.js';
import { EXIT } from './client/exit-codes.js';
import { Output, colourWanted } from './client/output.js';
import { infer, jobAction, temp, type JobAction } from './commands/actions.js';
import type { CommandContext } from './commands/context.js';
import { logs } from './commands/logs.js';
import { events, jobs, ops, pool, ps, reconcile } from './commands/status.js';
import { top } from './commands/top.js';

interface GlobalOptions {
  url: string;
  key: string | undefined;
  json: boolean;
  color: boolean | undefined;
}

const interrupt = new AbortController();

function context(argv: GlobalOptions): CommandContext {
  return {
    api: new ApiClient({ url: argv.url, apiKey: argv.key }),
    out: new Output(argv.json, colourWanted(process.stdout, argv.color ?? loadClientConfig().colour)),
    signal: interrupt.signal,
  };
}

const jobArgument = <T>(y: Argv<T>) =>
  y.positional('job', { type: 'string', demandOption: true, describe: 'job id' });

const JOB_ACTIONS: [JobAction, string][] = [
  ['load', "DEPLOY_LOAD: load the model into the job's server again"],
  ['unload', 'DEPLOY_UNLOAD: unload the model; the worker stays for a fast load'],
  ['terminate', "TERMINATE: remove the job's server (records are kept as history)"],
];

function cli(argv: string[]) {
  const client = loadClientConfig();
  let parser = yargs(argv);
  for (const [action, describe] of JOB_ACTIONS) {
    parser = parser.command(`${action} <job>`, describe, jobArgument, (a) =>
      jobAction(context(a as unknown as GlobalOptions), action, String(a.job), {}),
    );
  }
  return (
    parser
      .scriptName('modeldock')
      .usage('$0 <command> [options]\n\nRun the router (start), or drive a running one over its HTTP API.')
      .option('url', {
        type: 'string',
        default: client.url,
        defaultDescription: 'MODELDOCK_URL or http://127.0.0.1:8080',
        describe: "the router's address",
        global: true,
      })
      .option('key', {
        type: 'string',
        default: client.apiKey,
        defaultDescription: 'MODELDOCK_API_KEY',
        describe: 'API key, sent as Authorization: Bearer',
        global: true,
      })
      .option('json', {
        type: 'boolean',
        default: false,
        describe: 'JSON for scripts instead of tables',
        global: true,
      })
      .option('color', {
        type: 'boolean',
        describe: 'colour (default: only on a terminal, never with NO_COLOR)',
        global: true,
      })
      .command(
        ['start', '$0'],
        'run the router (the default command)',
        () => undefined,
        async (a) => {
          // The default command must not swallow a mistyped one (`start` itself is in `_`).
          const extra = a._[0] === 'start' ? a._.slice(1) : a._;
          if (extra.length > 0) throw new CliError(`unknown command ${String(extra[0])}`, EXIT.usage);
          return (await import('./commands/serve.js')).start();
        },
      )
      .command(
        'images [kinds..]',
        'build the worker, router, mlserver and triton images on this machine',
        (y) =>
          y.positional('kinds', {
            type: 'string',
            array: true,
            choices: ['worker', 'router', 'mlserver', 'triton'],
          }),
        async (a) => (await import('./commands/serve.js')).images((a.kinds as string[] | undefined) ?? []),
      )
      .command(
        'backup <file>',
        'copy the SQLite state store to FILE (online: the router may keep running)',
        (y) => y.positional('file', { type: 'string', demandOption: true }),
        async (a) => (await import('./commands/backup.js')).backup(String(a.file)),
      )
      .command(
        'restore <file>',
        'replace the SQLite state store by the backup FILE (stop the router first; it adopts live workers at its next start)',
        (y) => y.positional('file', { type: 'string', demandOption: true }),
        async (a) => (await import('./commands/backup.js')).restore(String(a.file)),
      )
      .command(
        'api-key',
        'print the admin key the router generated (MODELDOCK_GENERATED_KEY_FILE; the router image: /data/api-key)',
        () => undefined,
        async () => (await import('./commands/serve.js')).printGeneratedKey(),
      )
      .command(
        'version',
        'print the version',
        () => undefined,
        () => console.log(VERSION),
      )
      .command(
        'ps',
        'servers, like docker ps: job, server, state, model, container, age, memory, last inference',
        (y) =>
          y.option('all', {
            alias: 'a',
            type: 'boolean',
            default: false,
            describe: 'include history (terminated)',
          }),
        (a) => ps(context(a), a.all),
      )
      .command(
        'jobs',
        'jobs and their current state',
        () => undefined,
        (a) => jobs(context(a)),
      )
      .command(
        'ops',
        'operation records with their step timings, oldest first',
        (y) =>
          y
            .option('job', { type: 'string', describe: 'only this job' })
            .option('follow', {
              alias: 'f',
              type: 'boolean',
              default: false,
              describe: 'then print each one as it finishes',
            })
            .option('limit', { type: 'number', default: 20, describe: 'how many recent ones' }),
        (a) => ops(context(a), { job: a.job, follow: a.follow, limit: a.limit }),
      )
      .command(
        'events',
        'follow server state changes and finished operations',
        () => undefined,
        (a) => events(context(a)),
      )
      .command(
        'pool',
        'the warm pool and the memory budget',
        () => undefined,
        (a) => pool(context(a)),
      )
      .command(
        'reconcile',
        'compare the store with the runtime now and converge',
        () => undefined,
        (a) => reconcile(context(a)),
      )
      .command(
        'create <job>',
        'DEPLOY_CREATE: create and load a server for the job',
        (y) =>
          jobArgument(y)
            .option('model', { type: 'string', demandOption: true, describe: 'model id in the model store' })
            .option('dataset', { type: 'string', demandOption: true, describe: 'dataset id' })
            .option('replicas', {
              type: 'string',
              describe: 'replicas as MIN:MAX (e.g. 1:3, or 0:2 to scale to zero when idle); default 1:1',
            })
            .option('placement', {
              choices: ['dedicated', 'shared'] as const,
              describe: "a worker of its own, or loaded into a shared worker; default the router's",
            }),
        (a) =>
          jobAction(context(a), 'create', a.job, {
            model: a.model,
            dataset: a.dataset,
            replicas: a.replicas,
            placement: a.placement,
          }),
      )
      .command(
        'temp <job>',
        'TEMP: a one-shot server over the dataset, with progress, then count, accuracy and duration',
        (y) =>
          jobArgument(y)
            .option('model', { type: 'string', demandOption: true })
            .option('dataset', { type: 'string', demandOption: true }),
        (a) => temp(context(a), a.job, { model: a.model, dataset: a.dataset }),
      )
      .command(
        'logs <job>',
        "the job's worker output",
        (y) =>
          jobArgument(y)
            .option('follow', {
              alias: 'f',
              type: 'boolean',
              default: false,
              describe: 'keep printing new output',
            })
            .option('tail', { alias: 'n', type: 'number', default: 100, describe: 'lines from the end' }),
        (a) => logs(context(a), a.job, { follow: a.follow, tail: a.tail }),
      )
      .command(
        'infer <job>',
        'inference on the job with an Open Inference Protocol body',
        (y) =>
          jobArgument(y).option('input', {
            alias: 'i',
            type: 'string',
            demandOption: true,
            // One value always, so that `-` (stdin) is the option's value, not a positional.
            requiresArg: true,
            describe: 'file with the JSON body, or - for stdin',
          }),
        (a) => infer(context(a), a.job, a.input),
      )
      .command(
        'top',
        'live CPU and memory of every worker, refreshed in place',
        (y) =>
          y
            .option('interval', { type: 'number', default: 2, describe: 'seconds between refreshes' })
            .option('once', { type: 'boolean', default: false, describe: 'one sample, then exit' }),
        (a) => top(context(a), { intervalMs: Math.max(0.5, a.interval) * 1000, once: a.once }),
      )
      .completion('completion', 'print a bash/zsh completion script (source it from your shell rc)')
      .version(VERSION)
      .strictCommands()
      .strictOptions()
      .recommendCommands()
      .help()
      .alias('h', 'help')
      .wrap(Math.min(110, process.stdout.columns || 110))
      .epilogue('Exit codes: docs/cli.md. Environment: MODELDOCK_URL, MODELDOCK_API_KEY, NO_COLOR.')
      // Errors are printed once, below, as one line each.
      .fail((message, error) => {
        if (error) throw error;
        throw new CliError(message, EXIT.usage);
      })
  );
}

async function main(): Promise<void> {
  process.once('SIGINT', () => interrupt.abort());
  try {
    await cli(hideBin(process.argv)).parseAsync();
  } catch (error) {
    if (interrupt.signal.aborted && (error as Error).name === 'AbortError') return;
    const code =
      error instanceof CliError ? error.exitCode : error instanceof ConfigError ? EXIT.usage : EXIT.failed;
    console.error(`modeldock: ${error instanceof Error ? error.message : String(error)}`);
    if (code === EXIT.usage) console.error('(modeldock --help for usage)');
    process.exitCode = code;
  }
}

await main();
