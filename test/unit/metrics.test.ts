import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics } from '../../src/observability/metrics.js';

describe('metrics', () => {
  it('counts servers by state as they move', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.resetServers([
      { serverId: 'inf-0001', state: 'ready' },
      { serverId: 'inf-0002', state: 'terminated' },
    ]);
    metrics.trackServer('inf-0003', 'creating');
    metrics.trackServer('inf-0003', 'ready');
    metrics.trackServer('inf-0001', 'unloaded');
    const text = await metrics.registry.metrics();
    assert.match(text, /modeldock_servers\{state="ready"\} 1/);
    assert.match(text, /modeldock_servers\{state="unloaded"\} 1/);
    assert.match(text, /modeldock_servers\{state="creating"\} 0/);
    assert.match(text, /modeldock_servers\{state="terminated"\} 1/);
  });

  it('resets the live servers from a pass and keeps the terminated counted', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.resetServers([
      { serverId: 'inf-0001', state: 'ready' },
      { serverId: 'inf-0002', state: 'terminated' },
      { serverId: 'inf-0003', state: 'loading' },
    ]);
    // A pass lists the live records: inf-0003 is gone from them, inf-0001 changed.
    metrics.resetLiveServers([
      { serverId: 'inf-0001', state: 'unloaded' },
      { serverId: 'inf-0004', state: 'ready' },
    ]);
    const text = await metrics.registry.metrics();
    assert.match(text, /modeldock_servers\{state="ready"\} 1/);
    assert.match(text, /modeldock_servers\{state="unloaded"\} 1/);
    assert.match(text, /modeldock_servers\{state="loading"\} 0/);
    assert.match(text, /modeldock_servers\{state="terminated"\} 1/);
  });
});
