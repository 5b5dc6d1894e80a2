/**
 * compose.yaml brings the router up with one command (Debian's docker-compose here),
 * and the original requests work against it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_FILE } from '../../src/api/grpc/grpc-server.js';
import { after, before, describe, it } from 'node:test';
import { ensureImage } from '../../src/runtime/docker/image-builder.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';
import { REPO_ROOT, ROUTER_IMAGE, WORKER_IMAGE } from '../helpers/paths.js';
import { freePort } from '../helpers/ports.js';
import { postJson, removeInstanceContainers, uniqueInstance } from '../helpers/router.js';

const run = promisify(execFile);
const docker = new Dockerode();

describe('compose.yaml', () => {
  const instance = uniqueInstance('cmp');
  let env: NodeJS.ProcessEnv;
  let url: string;
  let grpcAddress: string;
  const compose = (...args: string[]) =>
    run('docker-compose', ['-f', 'compose.yaml', ...args], { cwd: REPO_ROOT, env, timeout: 120_000 });

  before(async () => {
    await ensureImage(docker, 'worker', WORKER_IMAGE);
    await ensureImage(docker, 'router', ROUTER_IMAGE);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const grpcPort = await freePort();
    grpcAddress = `127.0.0.1:${grpcPort}`;
    env = {
      ...process.env,
      COMPOSE_PROJECT_NAME: instance,
      MODELDOCK_HOST_PORT: String(port),
      MODELDOCK_GRPC_HOST_PORT: String(grpcPort),
      MODELDOCK_INSTANCE: instance,
      MODELDOCK_ROUTER_IMAGE: ROUTER_IMAGE,
      MODELDOCK_WORKER_IMAGE: WORKER_IMAGE,
      MODELDOCK_NETWORK_NAME: `${instance}_net`,
    };
  });
  after(async () => {
    await compose('down', '-v').catch(() => undefined);
    await removeInstanceContainers(docker, instance);
    for (const what of ['models', 'datasets']) {
      await docker
        .getVolume(`${instance}-${what}`)
        .remove()
        .catch(() => undefined);
    }
  });

  it('docker-compose up -d runs the router; the original requests work', async () => {
    await compose('up', '-d', 'router');
    const deadline = Date.now() + 60_000;
    for (let interval = 50; ; interval = Math.min(interval * 2, 500)) {
      if (
        await fetch(`${url}/healthz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      if (Date.now() > deadline) throw new Error((await compose('logs', '--tail=30', 'router')).stdout);
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
    const states: string[] = [];
    for (const body of ORIGIN_REQUESTS) {
      const response = await postJson(`${url}/inference_router/`, body);
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 400));
      states.push(response.body.state);
    }
    assert.deepEqual(states, ['ready', 'ready', 'unloaded', 'terminated', 'terminated']);
  });

  it('publishes the gRPC inference service', async () => {
    const definition = protoLoader.loadSync(PROTO_FILE, { keepCase: true, defaults: true });
    const Service = (grpc.loadPackageDefinition(definition) as any).inference.GRPCInferenceService;
    const client = new Service(grpcAddress, grpc.credentials.createInsecure());
    try {
      const metadata = await new Promise<any>((resolve, reject) =>
        client.ServerMetadata(
          {},
          { deadline: Date.now() + 10_000 },
          (error: Error | null, answer: unknown) => (error ? reject(error) : resolve(answer)),
        ),
      );
      assert.equal(metadata.name, 'modeldock');
      assert.ok(metadata.extensions.includes('model_repository'));
    } finally {
      client.close();
    }
  });
});
