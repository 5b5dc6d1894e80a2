import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadClientConfig, loadConfig, parseBytes } from '../../src/config.js';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({}, '/srv/md');
    assert.equal(config.port, 8080);
    assert.equal(config.grpcPort, 8081);
    assert.equal(config.store, 'sqlite:./data/modeldock.db');
    assert.equal(config.runtime, 'auto');
    assert.equal(config.modelsDir, path.resolve('/srv/md/models'));
    assert.equal(config.datasetsDir, path.resolve('/srv/md/datasets'));
    assert.equal(config.instance, 'modeldock');
    assert.equal(config.drainTimeoutMs, 30_000);
    assert.equal(config.loadWaitMs, 60_000);
  });

  it('reads the variables of DESIGN.md', () => {
    const config = loadConfig(
      {
        MODELDOCK_PORT: '81',
        MODELDOCK_STORE: 'mongodb://127.0.0.1:27017/modeldock',
        MODELDOCK_RUNTIME: 'process',
        MODELDOCK_MODELS_DIR: '/models',
        MODELDOCK_DATASETS_DIR: '/datasets',
        MODELDOCK_WORKER_MEMORY: '512m',
      },
      '/',
    );
    assert.equal(config.port, 81);
    assert.equal(config.store, 'mongodb://127.0.0.1:27017/modeldock');
    assert.equal(config.runtime, 'process');
    assert.equal(config.modelsDir, '/models');
    assert.equal(config.workerMemoryBytes, 512 * 1024 * 1024);
  });

  it('refuses bad values with a message naming the variable', () => {
    assert.throws(
      () => loadConfig({ MODELDOCK_PORT: 'eighty' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /MODELDOCK_PORT/);
        return true;
      },
    );
    assert.throws(() => loadConfig({ MODELDOCK_RUNTIME: 'k8s' }), /MODELDOCK_RUNTIME/);
    assert.throws(() => loadConfig({ MODELDOCK_RUNTIME: 'swarm' }), /MODELDOCK_RUNTIME/);
    assert.throws(
      () => loadConfig({ MODELDOCK_K8S_NAMESPACE: 'Not_A_Namespace' }),
      /MODELDOCK_K8S_NAMESPACE/,
    );
    assert.throws(() => loadConfig({ MODELDOCK_K8S_STORE: 'nfs:/x' }), /MODELDOCK_K8S_STORE/);
    assert.throws(() => loadConfig({ MODELDOCK_K8S_IMAGE_PULL_POLICY: 'never' }), /PULL_POLICY/);
    assert.throws(() => loadConfig({ MODELDOCK_K8S_REQUESTS_RATIO: '2' }), /REQUESTS_RATIO/);
    assert.throws(() => loadConfig({ MODELDOCK_STORE: 'postgres://x' }), /MODELDOCK_STORE/);
    assert.throws(() => loadConfig({ MODELDOCK_INSTANCE: 'Bad Name' }), /MODELDOCK_INSTANCE/);
    assert.throws(() => loadConfig({ MODELDOCK_WORKER_MEMORY: 'lots' }), /MODELDOCK_WORKER_MEMORY/);
  });

  it('reads the Kubernetes runtime settings, with defaults', () => {
    assert.deepEqual(loadConfig({}).kubernetes, {
      namespace: 'modeldock',
      store: 'hostpath',
      imagePullPolicy: 'IfNotPresent',
      requestsRatio: 0.1,
      kubeconfig: '',
      inCluster: false,
    });
    const k8s = loadConfig({
      MODELDOCK_RUNTIME: 'kubernetes',
      MODELDOCK_K8S_NAMESPACE: 'ml',
      MODELDOCK_K8S_STORE: 'pvc:model-store',
      MODELDOCK_K8S_IMAGE_PULL_POLICY: 'Never',
      MODELDOCK_K8S_REQUESTS_RATIO: '0.5',
      KUBECONFIG: '/etc/kube.conf',
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
    });
    assert.equal(k8s.runtime, 'kubernetes');
    assert.deepEqual(k8s.kubernetes, {
      namespace: 'ml',
      store: 'pvc:model-store',
      imagePullPolicy: 'Never',
      requestsRatio: 0.5,
      kubeconfig: '/etc/kube.conf',
      inCluster: true,
    });
  });

  it('parses sizes', () => {
    assert.equal(parseBytes('1048576'), 1048576);
    assert.equal(parseBytes('64k'), 65536);
    assert.equal(parseBytes('2g'), 2 * 1024 ** 3);
    assert.equal(parseBytes('1.5GiB'), 1.5 * 1024 ** 3);
    assert.equal(parseBytes('-1'), undefined);
  });
});

describe('loadClientConfig (the modeldock command)', () => {
  it('defaults to the local router, no key, colour decided by the terminal', () => {
    assert.deepEqual(loadClientConfig({}), {
      url: 'http://127.0.0.1:8080',
      apiKey: undefined,
      colour: undefined,
    });
  });

  it('reads MODELDOCK_URL and MODELDOCK_API_KEY', () => {
    const config = loadClientConfig({ MODELDOCK_URL: 'http://router:81', MODELDOCK_API_KEY: 'k' });
    assert.equal(config.url, 'http://router:81');
    assert.equal(config.apiKey, 'k');
  });

  it('NO_COLOR and TERM=dumb turn colour off, FORCE_COLOR on, NO_COLOR winning', () => {
    assert.equal(loadClientConfig({ NO_COLOR: '1' }).colour, false);
    assert.equal(loadClientConfig({ NO_COLOR: '' }).colour, undefined, 'an empty NO_COLOR is unset');
    assert.equal(loadClientConfig({ TERM: 'dumb' }).colour, false);
    assert.equal(loadClientConfig({ FORCE_COLOR: '1' }).colour, true);
    assert.equal(loadClientConfig({ FORCE_COLOR: '0' }).colour, undefined);
    assert.equal(loadClientConfig({ FORCE_COLOR: '1', NO_COLOR: '1' }).colour, false);
  });
});
