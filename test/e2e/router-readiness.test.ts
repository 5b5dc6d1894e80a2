/**
 * The router's readiness, asked every way a client or probe asks it: `/readyz`, the
 * protocol's `/v2/health/ready` (the Kubernetes readinessProbe of deploy/kubernetes) and
 * gRPC `ServerReady` give one answer: ready when the store and the runtime answer, not
 * ready (503, `ready: false`) while the runtime is away. Liveness stays up either way.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import Dockerode from 'dockerode';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';
import { loadInferenceService } from '../../src/inference-grpc/service-definition.js';
import { freePort } from '../helpers/ports.js';
import { getJson, startTestRouter, type TestRouter } from '../helpers/router.js';

async function serverReady(port: number): Promise<boolean> {
  const Client = grpc.makeGenericClientConstructor(loadInferenceService(), 'GRPCInferenceService');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as any;
  try {
    const answer = await new Promise<{ ready: boolean }>((resolve, reject) =>
      client.ServerReady({}, (error: grpc.ServiceError | null, response: { ready: boolean }) =>
        error ? reject(error) : resolve(response),
      ),
    );
    return answer.ready;
  } finally {
    client.close();
  }
}

async function readinessOf(t: TestRouter) {
  return {
    readyz: (await getJson(`${t.url}/readyz`)).status,
    v2: await getJson(`${t.url}/v2/health/ready`),
    live: (await getJson(`${t.url}/v2/health/live`)).status,
    grpc: await serverReady(t.router.grpcPort!),
  };
}

describe('router readiness', { timeout: 120_000 }, () => {
  const routers: TestRouter[] = [];
  after(async () => {
    for (const t of routers) await t.cleanup();
  });

  it('is ready on every path when its store and runtime answer', async () => {
    const t = await startTestRouter({ env: { MODELDOCK_GRPC_PORT: String(await freePort()) } });
    routers.push(t);
    const seen = await readinessOf(t);
    assert.equal(seen.readyz, 200);
    assert.equal(seen.v2.status, 200);
    assert.deepEqual(seen.v2.body, { ready: true });
    assert.equal(seen.live, 200);
    assert.equal(seen.grpc, true);
  });

  it('is not ready on any path while its runtime is away, and says which check failed', async () => {
    // A real Docker client whose engine is not there.
    const away = new Dockerode({ socketPath: '/nonexistent/modeldock-no-engine.sock' });
    const t = await startTestRouter({
      env: { MODELDOCK_GRPC_PORT: String(await freePort()) },
      runtime: (config) =>
        new DockerRuntime({
          docker: away,
          instance: config.instance,
          image: config.workerImage,
          modelsDir: config.modelsDir,
          datasetsDir: config.datasetsDir,
        }),
    });
    routers.push(t);
    const seen = await readinessOf(t);
    assert.equal(seen.readyz, 503);
    assert.equal(seen.v2.status, 503);
    assert.equal(seen.v2.body.ready, false);
    assert.deepEqual(
      seen.v2.body.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok]),
      [
        ['store', true],
        ['runtime', false],
      ],
    );
    assert.equal(seen.live, 200, 'alive all the same');
    assert.equal(seen.grpc, false);
  });
});
