/**
 * Records one operation: written as `running` before anything else happens (the intent),
 * each step timed, then finished as succeeded or failed. The record is what an operator
 * reads to see where the time went.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { errorMessage, isModeldockError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { OperationRecord, OperationType, StepName } from '../store/records.js';
import type { Store } from '../store/store.js';
import { currentCaller } from './caller.js';
import type { EventBus } from './event-bus.js';

export class OperationRecorder {
  private constructor(
    private record: OperationRecord,
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
    await deps.store.insertOperation(record);
    return new OperationRecorder(record, deps.store, deps.metrics, deps.events, deps.logger, now);
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
    await this.store.updateOperation(this.id, { serverId });
    // Only the server changes: the steps and warnings so far live here until the finish
    // writes them (the stored record does not have them yet).
    this.record = { ...this.record, serverId };
  }

  /** Run one step and time it; the step is recorded whether it succeeds or not. */
  async step<T>(name: StepName, work: () => Promise<T>): Promise<T> {
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

  async succeed(): Promise<OperationRecord> {
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
    this.record = await this.store.updateOperation(this.id, {
      status,
      error,
      steps: this.record.steps,
      warnings: this.record.warnings,
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
