/**
 * The original deployment, steps 2–5 of the original README automated: build the
 * images, create a bridge network, run the router container with the host's Docker
 * socket on it, send the five requests. Workers join the router's network and are
 * reached by name (nothing published), a model store mounted into the router from the
 * host reaches the workers, and without any mount the example store still works.
 */
import assert from 'node:assert/strict';
import Dockerode from 'dockerode';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureImage } from '../../src/runtime/docker/image-builder.js';
import { LABELS } from '../../src/runtime/runtime.js';
import { DATASETS_DIR, MODELS_DIR, ROUTER_IMAGE, WORKER_IMAGE } from '../helpers/paths.js';
import { bearer, getJson, postJson, removeInstanceContainers, uniqueInstance } from '../helpers/router.js';
import { ORIGIN_REQUESTS } from '../helpers/fixtures.js';

const docker = new Dockerode();
const requests = ORIGIN_REQUESTS;
const record = JSON.parse(
  readFileSync(path.join(DATASETS_DIR, 'ds-550/records.jsonl'), 'utf8').split('\n')[0]!,
);

async function waitHealthy(url: string, container: Dockerode.Container): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let interval = 25; ; interval = Math.min(interval * 2, 250)) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not up yet
    }
    const state = (await container.inspect()).State;
    if (!state.Running || Date.now() > deadline) {
      const logs = (await container.logs({ stdout: true, stderr: true, tail: 30 })).toString();
      throw new Error(`router container did not come up (${state.Status}):\n${logs}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

async function runRouter(
  name: string,
  network: string,
  instance: string,
  binds: string[],
  env: string[] = [],
) {
  const container = await docker.createContainer({
    name,
    Image: ROUTER_IMAGE,
    Env: [
      `MODELDOCK_INSTANCE=${instance}`,
      `MODELDOCK_WORKER_IMAGE=${WORKER_IMAGE}`,
      'MODELDOCK_LOG_LEVEL=info',
      ...env,
    ],
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: {
      NetworkMode: network,
      Binds: ['/var/run/docker.sock:/var/run/docker.sock', ...binds],
      PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  return { container, url: await startRouter(container) };
}

async function startRouter(container: Dockerode.Container): Promise<string> {
  await container.start();
  const port = (await container.inspect()).NetworkSettings.Ports['8080/tcp']![0]!.HostPort;
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, container);
  return url;
}

/** Runs a command in the container and returns its standard output. */
async function exec(container: Dockerode.Container, cmd: string[]): Promise<string> {
  const run = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await run.start({});
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  docker.modem.demuxStream(stream, out, process.stderr);
  await new Promise((resolve) => stream.on('end', resolve));
  return Buffer.concat(chunks).toString();
}

describe('router in a container with the Docker socket (the original deployment)', () => {
  const network = `tmp_network_${process.pid}`;
  const instances: string[] = [];
  const routers: Dockerode.Container[] = [];
  let hostStore: string;

  before(async () => {
    await ensureImage(docker, 'worker', WORKER_IMAGE);
    await ensureImage(docker, 'router', ROUTER_IMAGE);
    await docker.createNetwork({ Name: network, Driver: 'bridge' });
    // A host store holding a model the example store does not have.
    hostStore = await mkdtemp(path.join(os.tmpdir(), 'modeldock-host-store-'));
    await cp(MODELS_DIR, path.join(hostStore, 'models'), { recursive: true });
    await cp(path.join(MODELS_DIR, 'm-131'), path.join(hostStore, 'models', 'm-host'), { recursive: true });
    await cp(DATASETS_DIR, path.join(hostStore, 'datasets'), { recursive: true });
  });
  after(async () => {
    for (const router of routers) await router.remove({ force: true }).catch(() => undefined);
    for (const instance of instances) {
      await removeInstanceContainers(docker, instance);
      for (const what of ['models', 'datasets']) {
        await docker
          .getVolume(`${instance}-${what}`)
          .remove()
          .catch(() => undefined);
      }
    }
    await docker
      .getNetwork(network)
      .remove()
      .catch(() => undefined);
    await rm(hostStore, { recursive: true, force: true });
  });

  it('serves the five original requests from a host-mounted store, workers reached by name', async () => {
    const instance = uniqueInstance('dind');
    instances.push(instance);
    const key = 'container-admin-key-0123456789';
    const { container, url } = await runRouter(
      `router-${instance}`,
      network,
      instance,
      [`${hostStore}/models:/models:ro`, `${hostStore}/datasets:/datasets:ro`],
      [`MODELDOCK_API_KEY=${key}`],
    );
    routers.push(container);
    assert.equal((await postJson(`${url}/inference_router/`, requests[0]!)).status, 401, 'a key is asked');

    for (const body of requests) {
      const response = await postJson(`${url}/inference_router/`, body, bearer(key));
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 500));
    }
    // m-host exists only in the host store mounted into the router.
    const created = await postJson(
      `${url}/v1/jobs`,
      { job_id: 'h1', model: 'm-host', dataset: 'ds-550' },
      bearer(key),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const server = created.body.server;
    assert.equal(server.endpoint, `http://${server.container_name}:8000`, 'reached by name');
    const worker = await docker.getContainer(server.container_id).inspect();
    assert.ok(Object.keys(worker.NetworkSettings.Networks).includes(network), 'on the router network');
    assert.deepEqual(worker.HostConfig.PortBindings ?? {}, {}, 'nothing published');
    const modelsMount = worker.Mounts.find((m) => m.Destination === '/models');
    assert.equal(modelsMount?.Source, `${hostStore}/models`, 'the host path, translated');
    assert.equal(worker.Config.Labels[LABELS.instance], instance);

    const infer = await postJson(
      `${url}/v2/models/h1/infer`,
      {
        inputs: [{ name: 'pixels', shape: [1, 64], datatype: 'FP32', data: record.inputs.pixels }],
        outputs: [{ name: 'label' }],
      },
      bearer(key),
    );
    assert.equal(infer.status, 200, JSON.stringify(infer.body));
    assert.deepEqual(infer.body.outputs[0].data, [record.label]);
  });

  it('without a mounted store or a key: serves the example store with a generated admin key that survives restarts', async () => {
    const instance = uniqueInstance('dinx');
    instances.push(instance);
    const { container, url } = await runRouter(`router-${instance}`, network, instance, []);
    routers.push(container);
    assert.equal((await postJson(`${url}/inference_router/`, requests[4]!)).status, 401);

    const printKey = ['node', '/app/router.mjs', 'api-key'];
    const key = (await exec(container, printKey)).trim();
    assert.match(key, /^[A-Za-z0-9_-]{43}$/, 'a random 256-bit key');
    const mode =
      "const s=require('fs').statSync('/data/api-key');console.log((s.mode&0o777).toString(8),s.uid)";
    assert.equal((await exec(container, ['node', '-e', mode])).trim(), '600 0');
    const logs = (await container.logs({ stdout: true, stderr: true })).toString();
    assert.match(logs, /generated admin key in \/data\/api-key/);
    assert.match(logs, /docker exec <router container> node \/app\/router.mjs api-key/);
    assert.ok(!logs.includes(key), 'the key itself is never logged');

    const temp = await postJson(`${url}/inference_router/`, requests[4]!, bearer(key));
    assert.equal(temp.status, 200, JSON.stringify(temp.body).slice(0, 500));
    assert.equal(temp.body.result.correct, 527);
    const models = await getJson(`${url}/v1/models`, bearer(key));
    // The image carries the example store: every model of the repository's models/.
    assert.deepEqual(models.body.models, readdirSync(MODELS_DIR).sort());
    // The image carries the web console and renders its charts (Vega in the bundle).
    const page = await fetch(`${url}/ui/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="app.js">/);
    assert.equal((await fetch(`${url}/ui/app.js`)).status, 200);
    const chart = await fetch(`${url}/v1/charts/operations.svg`, { headers: bearer(key) });
    assert.equal(chart.status, 200);
    assert.match(await chart.text(), /<svg[\s\S]*TEMP/);

    // Same volume, same key: clients holding it keep working across a restart.
    await container.stop();
    const again = await startRouter(container);
    assert.equal((await exec(container, printKey)).trim(), key);
    assert.equal((await getJson(`${again}/v1/models`, bearer(key))).status, 200);
  });
});
