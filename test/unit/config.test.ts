import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  ConfigError,
  isLoopback,
  loadClientConfig,
  loadConfig,
  parseBytes,
  readKeys,
} from '../../src/config.js';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({}, '/srv/md');
    assert.equal(config.port, 8080);
    assert.equal(config.grpcPort, 8081);
    assert.equal(config.store, 'sqlite:./data/modeldock.db');
    assert.equal(config.sqliteSynchronous, 'full');
    assert.equal(config.runtime, 'auto');
    assert.equal(config.modelsDir, path.resolve('/srv/md/models'));
    assert.equal(config.datasetsDir, path.resolve('/srv/md/datasets'));
    assert.equal(config.instance, 'modeldock');
    assert.equal(config.drainTimeoutMs, 30_000);
    assert.equal(config.loadWaitMs, 60_000);
  });

  it('reads the variables of docs/configuration.md', () => {
    const config = loadConfig(
      {
        MODELDOCK_PORT: '81',
        MODELDOCK_DATABASE: 'mongodb://127.0.0.1:27017/modeldock',
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

  it('reads the state database under its old name MODELDOCK_STORE too; the new name wins', () => {
    const mongo = 'mongodb://127.0.0.1:27017/modeldock';
    assert.equal(loadConfig({ MODELDOCK_STORE: mongo }).store, mongo);
    assert.equal(loadConfig({ MODELDOCK_STORE: 'sqlite:/old.db', MODELDOCK_DATABASE: mongo }).store, mongo);
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
    assert.throws(() => loadConfig({ MODELDOCK_DATABASE: 'postgres://x' }), /MODELDOCK_DATABASE/);
    assert.throws(() => loadConfig({ MODELDOCK_STORE: 'postgres://x' }), /MODELDOCK_STORE/);
    assert.throws(() => loadConfig({ MODELDOCK_SQLITE_SYNCHRONOUS: 'off' }), /MODELDOCK_SQLITE_SYNCHRONOUS/);
    assert.throws(() => loadConfig({ MODELDOCK_INSTANCE: 'Bad Name' }), /MODELDOCK_INSTANCE/);
    assert.throws(() => loadConfig({ MODELDOCK_WORKER_MEMORY: 'lots' }), /MODELDOCK_WORKER_MEMORY/);
  });

  it('reads the share of the memory budget kept free ahead of need, 0 to 50 %', () => {
    assert.equal(loadConfig({}).shared.headroomPercent, 5);
    assert.equal(loadConfig({ MODELDOCK_EVICTION_HEADROOM_PERCENT: '0' }).shared.headroomPercent, 0);
    assert.equal(loadConfig({ MODELDOCK_EVICTION_HEADROOM_PERCENT: '50' }).shared.headroomPercent, 50);
    for (const bad of ['51', '-1', '2.5', 'some']) {
      assert.throws(
        () => loadConfig({ MODELDOCK_EVICTION_HEADROOM_PERCENT: bad }),
        /MODELDOCK_EVICTION_HEADROOM_PERCENT/,
      );
    }
  });

  it('reads the Kubernetes runtime settings, with defaults', () => {
    assert.deepEqual(loadConfig({}).kubernetes, {
      namespace: 'modeldock',
      store: 'hostpath',
      routerUrl: '',
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
      routerUrl: '',
      imagePullPolicy: 'Never',
      requestsRatio: 0.5,
      kubeconfig: '/etc/kube.conf',
      inCluster: true,
    });
  });

  it('the router store: workers fetch from MODELDOCK_K8S_ROUTER_URL, which must be reachable from Pods', () => {
    const config = loadConfig({
      MODELDOCK_RUNTIME: 'kubernetes',
      MODELDOCK_K8S_STORE: 'router',
      MODELDOCK_K8S_ROUTER_URL: 'http://10.244.0.1:8080',
      MODELDOCK_HOST: '10.244.0.1',
      MODELDOCK_API_KEY: 'k'.repeat(32),
    });
    assert.equal(config.kubernetes.store, 'router');
    assert.equal(config.kubernetes.routerUrl, 'http://10.244.0.1:8080');
    assert.throws(
      () => loadConfig({ MODELDOCK_K8S_STORE: 'router' }),
      /MODELDOCK_K8S_STORE=router needs MODELDOCK_K8S_ROUTER_URL/,
    );
    assert.throws(
      () => loadConfig({ MODELDOCK_K8S_STORE: 'router', MODELDOCK_K8S_ROUTER_URL: 'ftp://x' }),
      /MODELDOCK_K8S_ROUTER_URL/,
    );
    // No key, so loopback only: Pods could never reach it.
    assert.throws(
      () =>
        loadConfig({
          MODELDOCK_RUNTIME: 'kubernetes',
          MODELDOCK_K8S_STORE: 'router',
          MODELDOCK_K8S_ROUTER_URL: 'http://10.244.0.1:8080',
        }),
      /cannot reach a router listening on 127\.0\.0\.1/,
    );
  });

  it('parses sizes', () => {
    assert.equal(parseBytes('1048576'), 1048576);
    assert.equal(parseBytes('64k'), 65536);
    assert.equal(parseBytes('2g'), 2 * 1024 ** 3);
    assert.equal(parseBytes('1.5GiB'), 1.5 * 1024 ** 3);
    assert.equal(parseBytes('-1'), undefined);
  });

  it('without a key listens on loopback only and asks for none', () => {
    const config = loadConfig({});
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.auth.mode, 'none');
    assert.equal(config.maxServers, 64);
  });

  it('refuses a non-loopback address without a key, naming both fixes', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10']) {
      assert.throws(
        () => loadConfig({ MODELDOCK_HOST: host }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, /MODELDOCK_API_KEY/);
          assert.match(e.message, /MODELDOCK_AUTH=off/);
          return true;
        },
        host,
      );
    }
    assert.equal(loadConfig({ MODELDOCK_HOST: '127.0.0.2' }).host, '127.0.0.2');
    assert.equal(loadConfig({ MODELDOCK_HOST: 'localhost' }).host, 'localhost');
  });

  it('listens on all interfaces with a key, or with the explicit opt-out', () => {
    const keyed = loadConfig({ MODELDOCK_API_KEY: 'a'.repeat(32) });
    assert.equal(keyed.host, '0.0.0.0');
    assert.equal(keyed.auth.mode, 'keys');
    assert.deepEqual(readKeys(keyed.auth), { admin: ['a'.repeat(32)], infer: [] });
    const off = loadConfig({ MODELDOCK_AUTH: 'off', MODELDOCK_HOST: '0.0.0.0' });
    assert.equal(off.auth.mode, 'off');
    assert.equal(off.host, '0.0.0.0');
    assert.throws(() => loadConfig({ MODELDOCK_AUTH: 'maybe' }), /MODELDOCK_AUTH/);
    assert.throws(() => loadConfig({ MODELDOCK_METRICS_PUBLIC: 'yes' }), /MODELDOCK_METRICS_PUBLIC/);
  });

  it('refuses short keys and keys with spaces', () => {
    assert.throws(() => loadConfig({ MODELDOCK_API_KEY: 'secret' }), /MODELDOCK_API_KEY.*at least 16/);
    assert.throws(
      () => loadConfig({ MODELDOCK_INFER_KEY: 'a key with spaces inside' }),
      /MODELDOCK_INFER_KEY/,
    );
  });

  it('reads key files one key a line, skipping blanks and comments', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'modeldock-keys-'));
    const admin = path.join(dir, 'admin');
    const infer = path.join(dir, 'infer');
    await writeFile(admin, `# rotated 2026-11\n${'n'.repeat(20)}\n\n  ${'o'.repeat(20)}  \n`);
    await writeFile(infer, `${'i'.repeat(20)}\n`);
    const config = loadConfig({ MODELDOCK_API_KEY_FILE: admin, MODELDOCK_INFER_KEY_FILE: infer });
    assert.equal(config.auth.mode, 'keys');
    assert.deepEqual(readKeys(config.auth), {
      admin: ['n'.repeat(20), 'o'.repeat(20)],
      infer: ['i'.repeat(20)],
    });
    await writeFile(admin, '# nothing yet\n');
    await writeFile(infer, '');
    assert.throws(() => readKeys(config.auth), /hold no key/);
    const missing = loadConfig({ MODELDOCK_API_KEY_FILE: path.join(dir, 'absent') });
    assert.throws(() => readKeys(missing.auth), /MODELDOCK_API_KEY_FILE: cannot read/);
  });

  it('uses a generated key file only when no key is configured and auth is on', () => {
    const generated = { MODELDOCK_GENERATED_KEY_FILE: '/data/api-key' };
    assert.equal(loadConfig(generated).auth.generatedKeyFile, '/data/api-key');
    assert.equal(loadConfig(generated).auth.mode, 'keys');
    assert.equal(
      loadConfig({ ...generated, MODELDOCK_API_KEY: 'k'.repeat(20) }).auth.generatedKeyFile,
      undefined,
    );
    assert.equal(loadConfig({ ...generated, MODELDOCK_AUTH: 'off' }).auth.generatedKeyFile, undefined);
  });

  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost'])
      assert.ok(isLoopback(host), host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com']) assert.ok(!isLoopback(host), host);
  });
});

describe('MODELDOCK_WARM_POOL (a count, or a pool per serving runtime)', () => {
  const read = (value: string | undefined) => {
    const config = loadConfig(value === undefined ? {} : { MODELDOCK_WARM_POOL: value }, '/');
    return { own: config.warmPoolSize, runtimes: config.warmPoolRuntimes };
  };

  it("a bare count sizes modeldock's worker pool, as always; none by default", () => {
    assert.deepEqual(read(undefined), { own: 0, runtimes: {} });
    assert.deepEqual(read('3'), { own: 3, runtimes: {} });
  });

  it('entry=count items size the pools of serving runtimes, beside a bare count or modeldock-onnx=count', () => {
    assert.deepEqual(read('2,mlserver=1'), { own: 2, runtimes: { mlserver: 1 } });
    assert.deepEqual(read(' modeldock-onnx=1 , triton=2, mlserver=0 '), {
      own: 1,
      runtimes: { triton: 2, mlserver: 0 },
    });
  });

  it('refuses what is not a count or an entry=count item, and an entry named twice', () => {
    for (const bad of ['-1', 'mlserver', 'mlserver=', 'MLServer=1', 'mlserver=1.5', '2,3', 'a=1,a=2']) {
      assert.throws(() => read(bad), ConfigError, bad);
    }
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
