import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { freeLoopbackPorts } from '../../src/runtime/loopback-port.js';

describe('free loopback ports for a foreign server', () => {
  it('are distinct, none of the taken ones, and each can be bound', async () => {
    const [taken] = await freeLoopbackPorts(1);
    const ports = await freeLoopbackPorts(3, [taken!]);
    assert.equal(ports.length, 3);
    assert.equal(new Set(ports).size, 3);
    assert.ok(!ports.includes(taken!));
    for (const port of ports) {
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
      });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
