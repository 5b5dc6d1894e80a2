/**
 * The worker's boot-time warm-up: the embedded identity model really runs on ONNX
 * Runtime (a corrupt constant or a broken runtime would stop every worker from starting).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { warmUpOnnxRuntime } from '../../src/worker/warm-up.js';

describe('worker warm-up', () => {
  it('creates, runs and releases a session of the embedded identity model', async () => {
    const first = await warmUpOnnxRuntime(1);
    const second = await warmUpOnnxRuntime(2);
    for (const ms of [first, second]) assert.ok(Number.isFinite(ms) && ms >= 0, `took ${ms} ms`);
  });
});
