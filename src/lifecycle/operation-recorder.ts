/**
 * Records one operation: written as `running` before it changes anything (the intent,
 * committed with its first change: operation-intents.ts), each step timed, then finished
 * as succeeded or failed. The record is what an operator reads to see where the time went.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { errorMessage, isModeldockError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { OperationRecord, OperationType, StepName } from '../store/records.js';
import type { Store } from '../store/store.js';
import { currentCaller } from './caller.js';
import type { EventBus } from './event-bus.js';
import { PendingIntent } from './operation-intents.js';

/**
 * Steps that act on nothing outside the router's own state (its store writes carry the
 * intent themselves, and a placement's own steps that open a worker flush it): the
 * intent need not be written before them. Every other step acts on a worker or the
 * runtime, and the intent is written first.
 */
const LOCAL_STEPS: ReadonlySet<StepName> = new Set(['validate', 'record', 'place', 'evict', 'drain']);

export class OperationRecorder {
  private constructor(
    private record: OperationRecord,
    /** The intent until it is written with the operation's first change. */
    readonly intent: PendingIntent,
    private readonly store: Store,
    private readonly metrics: Metrics,
    private readonly events: EventBus,
    private readonly logger: Logger,
    private readonly startedAtMs: number,
  ) {}

  static async begin(
    deps: { store: Store; metrics: Metrics; events: EventBus; logger: Logger },
    init: {
      operationId?: string;
      type: OperationType;
      jobId: string;
      reason: string;
      warnings?: string[];
      /** The server it acts on, when known from the start: named by the first write, not a second. */
      serverId?: string;
    },
  ): Promise<OperationRecorder> {
    const now = Date.now();
    const record: OperationRecord = {
      operationId: init.operationId ?? newOperationId(),
      type: init.type,
      jobId: init.jobId,
      serverId: init.serverId ?? null,
      status: 'running',
      reason: init.reason,
      // Whoever's request this runs in (lifecycle/caller.ts); `system` for the router's own work.
      caller: currentCaller(),
      steps: [],
      warnings: init.warnings ?? [],
      error: null,
      startedAt: new Date(now).toISOString(),
      finishedAt: null,
      durationMs: null,
    };
    const intent = new PendingIntent(record, deps.store);
    return new OperationRecorder(record, intent, deps.store, deps.metrics, deps.events, deps.logger, now);
  }

  get id(): string {
    return this.record.operationId;
  }

  get current(): OperationRecord {
    return this.record;
  }

  warn(message: string): void {
    this.record = { ...this.record, warnings: [...this.record.warnings, message] };
  }

  async attachServer(serverId: string): Promise<void> {
    if (this.record.serverId === serverId) return;
    if (!this.intent.amend({ serverId })) await this.store.updateOperation(this.id, { serverId });
    // Only the server changes: the steps and warnings so far live here until the finish
    // writes them (the stored record does not have them yet).
    this.record = { ...this.record, serverId };
  }

  /** Run one step and time it; the step is recorded whether it succeeds or not. */
  async step<T>(name: StepName, work: () => Promise<T>): Promise<T> {
    if (!LOCAL_STEPS.has(name)) await this.intent.flush();
    const started = Date.now();
    const startedHr = performance.now();
    try {
      return await work();
    } finally {
      const durationMs = round(performance.now() - startedHr);
      this.record = {
        ...this.record,
        steps: [...this.record.steps, { name, startedAt: new Date(started).toISOString(), durationMs }],
      };
      this.metrics.stepDuration.observe({ type: this.record.type, step: name }, durationMs / 1000);
    }
  }

  /** Finished as succeeded, naming `serverId` (the server it ended on) when given. */
  async succeed(serverId?: string): Promise<OperationRecord> {
    if (serverId !== undefined) this.record = { ...this.record, serverId };
    return this.finish('succeeded', null);
  }

  async fail(error: unknown): Promise<OperationRecord> {
    const code = isModeldockError(error) ? error.code : 'internal';
    return this.finish('failed', { code, message: errorMessage(error) });
  }

  private async finish(
    status: 'succeeded' | 'failed',
    error: OperationRecord['error'],
  ): Promise<OperationRecord> {
    const durationMs = round(Date.now() - this.startedAtMs);
    this.record = await this.intent.finish({
      ...this.record,
      status,
      error,
      finishedAt: new Date().toISOString(),
      durationMs,
    });
    this.metrics.operations.inc({ type: this.record.type, outcome: status });
    this.metrics.operationDuration.observe({ type: this.record.type }, durationMs / 1000);
    this.events.publish({ type: 'operation', operation: this.record });
    const { operationId, type, jobId, serverId, reason, caller } = this.record;
    this.logger.info(
      { operationId, type, jobId, serverId, status, reason, caller, durationMs, code: error?.code },
      `operation ${type} of job ${jobId} ${status} (caller ${caller})`,
    );
    return this.record;
  }
}

export function newOperationId(): string {
  return `op-${randomUUID()}`;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
