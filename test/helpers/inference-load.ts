/**
 * A small closed-loop inference load generator (tests and benchmarks): a few keep-alive
 * connections to the router, each sending its next request as soon as the previous one
 * is answered, over a list of targets in turn. Every request is kept as a sample (when
 * it was sent, how long it took, the status and, for errors, the body), so a test can
 * judge each request by what its job was meant to be doing when it was sent.
 */
import { Pool } from 'undici';
import { DIGITS } from './fixtures.js';

export interface LoadTarget {
  /** The job the request is for (for grouping samples). */
  job: string;
  /** Request path on the router, e.g. `/v2/models/a1/infer`. */
  path: string;
}

export interface LoadSample {
  job: string;
  path: string;
  /** performance.now() when the request was sent and when its answer had fully arrived. */
  sentAt: number;
  doneAt: number;
  /** HTTP status; 0 when no answer came (connection refused or reset). */
  status: number;
  /** The answer's body (or the client error) for anything but 2xx. */
  error?: string;
}

/** One m-131 digit as an Open Inference Protocol request (small: the hot path takes it). */
export const DIGIT_INFER_BODY = JSON.stringify({
  inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: DIGITS[0]!.inputs.pixels }],
  outputs: [{ name: 'label' }],
});

/** `/v2/models/<job>/infer` with the job's first character percent-encoded: the Fastify route decodes it, the hot path declines it. */
export function encodedInferPath(job: string): string {
  const first = job.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');
  return `/v2/models/%${first}${job.slice(1)}/infer`;
}

/** The three ways inference for a job reaches the router: hot path, Fastify /v2 route, /v1. */
export function allInferPaths(job: string): LoadTarget[] {
  return [
    { job, path: `/v2/models/${job}/infer` },
    { job, path: encodedInferPath(job) },
    { job, path: `/v1/jobs/${job}/infer` },
  ];
}

export class InferenceLoad {
  readonly samples: LoadSample[] = [];
  private readonly pool: Pool;
  private running = false;
  private loops: Promise<void>[] = [];
  private next = 0;
  private waiters: { count: number; wake: () => void }[] = [];

  constructor(
    origin: string,
    private targets: LoadTarget[],
    private readonly options: { connections: number; maxRequests: number },
  ) {
    this.pool = new Pool(origin, { connections: options.connections, pipelining: 1 });
  }

  start(): this {
    this.running = true;
    this.loops = Array.from({ length: this.options.connections }, () => this.loop());
    return this;
  }

  /** From now on send to these targets instead. */
  retarget(targets: LoadTarget[]): void {
    this.targets = targets;
  }

  /** Resolves once `count` more answers (of any status) have come in than now. */
  answered(count: number): Promise<void> {
    const target = this.samples.length + count;
    if (!this.running) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ count: target, wake }));
  }

  /** Stop sending, wait for the requests under way, close the connections. */
  async stop(): Promise<LoadSample[]> {
    this.running = false;
    await Promise.all(this.loops);
    for (const waiter of this.waiters.splice(0)) waiter.wake();
    await this.pool.close();
    return this.samples;
  }

  private async loop(): Promise<void> {
    while (this.running && this.samples.length < this.options.maxRequests) {
      const target = this.targets[this.next++ % this.targets.length]!;
      this.record(await this.send(target));
    }
    // Out of requests: whoever waits for more answers would wait forever.
    this.running = false;
    for (const waiter of this.waiters.splice(0)) waiter.wake();
  }

  private async send(target: LoadTarget): Promise<LoadSample> {
    const sentAt = performance.now();
    try {
      const response = await this.pool.request({
        method: 'POST',
        path: target.path,
        headers: { 'content-type': 'application/json' },
        body: DIGIT_INFER_BODY,
      });
      const text = await response.body.text();
      const ok = response.statusCode >= 200 && response.statusCode < 300;
      return {
        ...target,
        sentAt,
        doneAt: performance.now(),
        status: response.statusCode,
        ...(ok ? {} : { error: text.slice(0, 300) }),
      };
    } catch (error) {
      return { ...target, sentAt, doneAt: performance.now(), status: 0, error: String(error) };
    }
  }

  private record(sample: LoadSample): void {
    this.samples.push(sample);
    const ready = this.waiters.filter((w) => this.samples.length >= w.count);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => this.samples.length < w.count);
    for (const waiter of ready) waiter.wake();
  }
}

/** A readable digest of the samples that failed: status and error, counted. */
export function failureDigest(samples: LoadSample[]): string {
  const counts = new Map<string, number>();
  for (const s of samples) {
    const key = `${s.status} ${s.path}: ${s.error ?? ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()].map(([key, n]) => `${n}× ${key}`).join('\n');
}
