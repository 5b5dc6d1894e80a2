/** Acting on jobs: create, load, unload, terminate, temp, infer. */
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { CliError } from '../client/api-client.js';
import { EXIT } from '../client/exit-codes.js';
import { duration, type Output } from '../client/output.js';
import { readEvents } from '../client/sse.js';
import type { OutcomeView, ServerView } from '../client/wire.js';
import type { CommandContext } from './context.js';
import { stepSummary } from './status.js';

export type JobAction = 'create' | 'load' | 'unload' | 'terminate';

const enc = encodeURIComponent;

function printOutcome(out: Output, jobId: string, outcome: OutcomeView): void {
  if (out.json) return out.data(outcome);
  const { operation, server } = outcome;
  const state = server ? out.state(server.state) : out.c.dim('no server');
  const where = server
    ? `  server ${server.server_id}  ${server.placement === 'shared' ? 'shared worker' : 'container'} ${server.container_name}`
    : '';
  out.line(`${out.c.bold(jobId)}: ${operation.type} ${out.state(operation.status)} → ${state}${where}`);
  out.line(
    `  ${duration(operation.duration_ms)}${operation.steps.length ? `  (${stepSummary(operation)})` : ''}`,
  );
  // More than one replica: each one's server and container too.
  for (const replica of outcome.servers && outcome.servers.length > 1 ? outcome.servers : []) {
    out.line(
      `  replica ${replica.server_id} ${out.state(replica.state)}  container ${replica.container_name}`,
    );
  }
  for (const warning of operation.warnings) out.line(`  ${out.c.yellow('warning:')} ${warning}`);
}

export async function jobAction(
  { api, out }: CommandContext,
  action: JobAction,
  jobId: string,
  options: {
    model?: string | undefined;
    dataset?: string | undefined;
    replicas?: string | undefined;
    placement?: 'dedicated' | 'shared' | undefined;
  },
): Promise<void> {
  let outcome: OutcomeView;
  if (action === 'create') {
    if (!options.model || !options.dataset) {
      throw new CliError('create needs --model and --dataset', EXIT.usage);
    }
    outcome = await api.post('/v1/jobs', {
      job_id: jobId,
      model: options.model,
      dataset: options.dataset,
      ...(options.replicas === undefined ? {} : { replicas: parseReplicas(options.replicas) }),
      ...(options.placement === undefined ? {} : { placement: options.placement }),
    });
  } else {
    outcome = await api.post(`/v1/jobs/${enc(jobId)}/${action}`);
  }
  printOutcome(out, jobId, outcome);
}

/** `MIN:MAX` (or one number N for N:N); the router checks the bounds themselves. */
function parseReplicas(text: string): { min: number; max: number } {
  const match = /^(\d+)(?::(\d+))?$/.exec(text.trim());
  if (!match) throw new CliError(`--replicas must be MIN:MAX (e.g. 1:3), got "${text}"`, EXIT.usage);
  const min = Number(match[1]);
  return { min, max: match[2] === undefined ? min : Number(match[2]) };
}

interface BatchSummary {
  count?: number;
  accuracy?: number | null;
  correct?: number | null;
  duration_ms?: number;
}

/**
 * TEMP: a one-shot server over the dataset. While it runs, the job's server states come
 * from /v1/events (on stderr, so stdout keeps only the answer); then a summary.
 */
export async function temp(
  { api, out, signal }: CommandContext,
  jobId: string,
  options: { model: string; dataset: string },
  progress: NodeJS.WriteStream = process.stderr,
): Promise<void> {
  const watching = new AbortController();
  const onInterrupt = () => watching.abort();
  signal.addEventListener('abort', onInterrupt);
  const started = Date.now();
  const stream = await api.stream('/v1/events', watching.signal);
  const inPlace = progress.isTTY === true;
  const watch = (async () => {
    if (!stream.body) return;
    for await (const message of readEvents(stream.body, watching.signal)) {
      if (message.event !== 'server') continue;
      const { server } = JSON.parse(message.data) as { server: ServerView };
      if (server.job_id !== jobId || server.kind !== 'temp') continue;
      const line = `${jobId}: ${server.state} (${duration(Date.now() - started)})`;
      if (out.json) continue;
      if (inPlace) progress.write(`\r\x1b[2K${line}`);
      else progress.write(`${line}\n`);
    }
  })().catch(() => undefined);
  let outcome: OutcomeView;
  try {
    outcome = await api.post(
      '/v1/temp',
      { job_id: jobId, model: options.model, dataset: options.dataset },
      signal,
    );
  } finally {
    watching.abort();
    signal.removeEventListener('abort', onInterrupt);
    await watch;
    if (inPlace && !out.json) progress.write('\r\x1b[2K');
  }
  if (out.json) return out.data(outcome);
  const result = (outcome.result ?? {}) as BatchSummary;
  printOutcome(out, jobId, { ...outcome, server: null });
  out.fields([
    ['count', result.count === undefined ? '-' : String(result.count)],
    [
      'accuracy',
      result.accuracy === null || result.accuracy === undefined
        ? 'n/a (the dataset has no labels)'
        : `${(result.accuracy * 100).toFixed(2)} %${result.correct != null ? ` (${result.correct} correct)` : ''}`,
    ],
    ['inference', duration(result.duration_ms)],
    ['total', duration(outcome.operation.duration_ms)],
  ]);
}

export async function infer(
  { api, out }: CommandContext,
  jobId: string,
  input: string,
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<void> {
  const raw =
    input === '-'
      ? await text(stdin)
      : await readFile(input, 'utf8').catch((error: Error) => {
          throw new CliError(`cannot read ${input}: ${error.message}`, EXIT.usage);
        });
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (error) {
    throw new CliError(
      `${input === '-' ? 'stdin' : input} is not JSON: ${(error as Error).message}`,
      EXIT.usage,
    );
  }
  const answer = await api.post<{
    outputs?: { name: string; datatype: string; shape: number[]; data: unknown[] }[];
  }>(`/v1/jobs/${enc(jobId)}/infer`, body);
  if (out.json || !Array.isArray(answer?.outputs)) return out.data(answer);
  for (const output of answer.outputs) {
    const data = Array.isArray(output.data) ? output.data : [];
    const shown = data.slice(0, 10).join(', ') + (data.length > 10 ? `, … (${data.length} values)` : '');
    out.line(`${out.c.bold(output.name)} ${output.datatype} [${output.shape.join(', ')}]: ${shown}`);
  }
}
