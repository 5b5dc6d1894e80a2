/** `modeldock logs JOB [--follow] [--tail N]`: the worker's own output, as it prints it. */
import type { CommandContext } from './context.js';

export async function logs(
  { api, signal }: CommandContext,
  jobId: string,
  options: { follow: boolean; tail: number },
  sink: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  const query = new URLSearchParams({ tail: String(options.tail), follow: String(options.follow) });
  const response = await api.stream(`/v1/jobs/${encodeURIComponent(jobId)}/logs?${query}`, signal);
  if (!response.body) return;
  try {
    for await (const chunk of response.body) sink.write(chunk);
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}
