import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Catalog } from '../../src/lifecycle/catalog.js';
import {
  DEFAULT_SERVING_RUNTIME,
  ServingRuntimes,
  builtInServingRuntimes,
  readServingRuntimeFiles,
} from '../../src/lifecycle/serving-runtimes.js';

function runtimesDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'modeldock-runtimes-'));
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

/** Every command "exists": selection is tested apart from the PATH of this machine. */
const everywhere = { canRun: () => true };

describe('serving-runtime catalog', () => {
  test('built in: the ONNX worker, Triton and MLServer, each with formats and a way to start', () => {
    const entries = builtInServingRuntimes();
    assert.deepEqual(
      entries.map((e) => e.name),
      [DEFAULT_SERVING_RUNTIME, 'triton', 'mlserver'],
    );
    const triton = entries.find((e) => e.name === 'triton')!;
    assert.ok(triton.process?.args.includes('--model-control-mode=explicit'));
    const mlserver = entries.find((e) => e.name === 'mlserver')!;
    assert.ok(mlserver.formats.some((f) => f.name === 'sklearn'));
    assert.equal(mlserver.process?.command, 'mlserver');
  });

  test('Triton runs on Docker only with its image, its Python backend from an exec tmpfs of its own', () => {
    assert.equal(builtInServingRuntimes().find((e) => e.name === 'triton')!.image, undefined);
    const triton = builtInServingRuntimes({ triton: 'modeldock/triton:t' }).find((e) => e.name === 'triton')!;
    assert.equal(triton.image, 'modeldock/triton:t');
    assert.equal(triton.execDir, '/opt/triton-backends');
    assert.ok(triton.container?.args.includes('--backend-directory=/opt/triton-backends'));
    assert.notEqual(triton.ports.http, 8000);
    // Only Triton asks for one: MLServer's container has the read-only root and noexec /tmp alone.
    const mlserver = builtInServingRuntimes({ mlserver: 'modeldock/mlserver:t' }).find(
      (e) => e.name === 'mlserver',
    )!;
    assert.equal(mlserver.execDir, undefined);
  });

  test('ONNX goes to modeldock’s worker, which outranks Triton', () => {
    const catalog = new ServingRuntimes(builtInServingRuntimes(), 'process', everywhere);
    assert.equal(catalog.select('m', { format: 'onnx' }).name, DEFAULT_SERVING_RUNTIME);
    assert.equal(catalog.select('m', { format: 'python' }).name, 'triton');
    assert.equal(catalog.select('m', { format: 'sklearn' }).name, 'mlserver');
  });

  test('model.json naming a runtime wins over priority, if that runtime serves the format', () => {
    const catalog = new ServingRuntimes(builtInServingRuntimes(), 'process', everywhere);
    assert.equal(catalog.select('m', { format: 'onnx', runtime: 'triton' }).name, 'triton');
    assert.throws(
      () => catalog.select('m', { format: 'sklearn', runtime: 'triton' }),
      (error: Error & { code?: string }) =>
        error.code === 'invalid_input' && /triton does not serve/.test(error.message),
    );
    assert.throws(
      () => catalog.select('m', { runtime: 'nonesuch' }),
      (error: Error & { code?: string }) =>
        error.code === 'invalid_input' && /not in the catalog/.test(error.message),
    );
  });

  test('a format nobody serves is refused with the formats that are served', () => {
    const catalog = new ServingRuntimes(builtInServingRuntimes(), 'process', everywhere);
    assert.throws(
      () => catalog.select('m-9', { format: 'caffe' }),
      (error: Error & { code?: string; details?: Record<string, unknown> }) => {
        assert.equal(error.code, 'invalid_input');
        assert.match(error.message, /no serving runtime serves model m-9 of format "caffe"/);
        assert.match(error.message, /formats served here: .*onnx.*sklearn/);
        assert.deepEqual((error.details?.servedFormats as string[]).includes('python'), true);
        return true;
      },
    );
  });

  test('an entry serves only where it can be started', () => {
    const noCommands = new ServingRuntimes(builtInServingRuntimes(), 'process', {
      canRun: () => false,
    });
    assert.deepEqual(noCommands.servedFormats(), ['onnx']);
    assert.throws(() => noCommands.select('m', { format: 'sklearn' }), /formats served here: onnx$/);
    // Docker runs foreign servers from images: MLServer's once its image is named.
    const noImages = new ServingRuntimes(builtInServingRuntimes(), 'docker', everywhere);
    assert.deepEqual(noImages.servedFormats(), ['onnx']);
    assert.throws(() => noImages.select('m', { runtime: 'mlserver' }), /the entry has no image/);
    const docker = new ServingRuntimes(
      builtInServingRuntimes({ mlserver: 'modeldock/mlserver:t' }),
      'docker',
      everywhere,
    );
    assert.equal(docker.select('m', { format: 'sklearn' }).image, 'modeldock/mlserver:t');
    assert.throws(() => docker.select('m', { format: 'python' }), /formats served here: .*sklearn/);
    // Kubernetes runs them from the same images, in Pods.
    const kubernetes = new ServingRuntimes(
      builtInServingRuntimes({ mlserver: 'modeldock/mlserver:t' }),
      'kubernetes',
      everywhere,
    );
    assert.equal(kubernetes.select('m', { format: 'sklearn' }).image, 'modeldock/mlserver:t');
    assert.throws(
      () => kubernetes.select('m', { runtime: 'triton' }),
      /cannot be started on the kubernetes runtime \(the entry has no image\)/,
    );
  });

  test('an operator file adds an entry; its priority decides against the built-ins', () => {
    const dir = runtimesDir({
      'my-sklearn.json': {
        name: 'my-sklearn',
        formats: [{ name: 'sklearn', priority: 5 }, { name: 'custom' }],
        process: { command: '/opt/my-server/run', args: ['--port', '{port}'] },
      },
      'notes.txt': 'not an entry',
    });
    const catalog = ServingRuntimes.load(dir, 'process', everywhere);
    const mine = catalog.select('m', { format: 'sklearn' });
    assert.equal(mine.name, 'my-sklearn');
    assert.equal(mine.source, path.join(dir, 'my-sklearn.json'));
    // Defaults filled in from the documented format.
    assert.deepEqual(mine.health, { live: '/v2/health/live', ready: '/v2/health/ready' });
    assert.equal(mine.multiModel, true);
    assert.equal(catalog.select('m', { format: 'custom' }).name, 'my-sklearn');
  });

  test('autoSelect: false serves a format only to models that name the entry', () => {
    const dir = runtimesDir({
      'pinned.json': {
        name: 'pinned',
        formats: [{ name: 'onnx', priority: 9, autoSelect: false }],
        process: { command: 'pinned-server' },
      },
    });
    const catalog = ServingRuntimes.load(dir, 'process', everywhere);
    assert.equal(catalog.select('m', { format: 'onnx' }).name, DEFAULT_SERVING_RUNTIME);
    assert.equal(catalog.select('m', { format: 'onnx', runtime: 'pinned' }).name, 'pinned');
  });

  test('an operator entry named like a built-in one replaces it', () => {
    const dir = runtimesDir({
      'mlserver.json': {
        name: 'mlserver',
        formats: [{ name: 'sklearn' }],
        process: { command: '/opt/venv/bin/mlserver', args: ['start', '{modelsDir}'] },
      },
    });
    const catalog = ServingRuntimes.load(dir, 'process', everywhere);
    assert.equal(catalog.entries.filter((e) => e.name === 'mlserver').length, 1);
    assert.equal(catalog.select('m', { format: 'sklearn' }).process?.command, '/opt/venv/bin/mlserver');
  });

  test('a malformed file is refused with its name and the problem', () => {
    assert.throws(
      () => readServingRuntimeFiles(runtimesDir({ 'bad.json': { name: 'bad', formats: [] } })),
      /bad\.json: \/formats/,
    );
    assert.throws(() => readServingRuntimeFiles(runtimesDir({ 'x.json': '{' })), /x\.json: not JSON/);
    assert.throws(
      () =>
        readServingRuntimeFiles(
          runtimesDir({ 'w.json': { name: 'w', formats: [{ name: 'onnx' }], modeldockWorker: true } }),
        ),
      /modeldockWorker is not a setting/,
    );
    assert.throws(
      () =>
        readServingRuntimeFiles(
          runtimesDir({
            'e.json': { name: 'e', formats: [{ name: 'onnx' }], image: 'x', execDir: 'relative' },
          }),
        ),
      /e\.json: \/execDir/,
    );
    assert.deepEqual(readServingRuntimeFiles('/nonexistent/modeldock-runtimes'), []);
  });
});

describe('model format from the model store', () => {
  function store(models: Record<string, Record<string, string>>): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'modeldock-models-'));
    for (const [id, files] of Object.entries(models)) {
      mkdirSync(path.join(dir, id));
      for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, id, name), content);
    }
    return dir;
  }

  test('model.onnx alone is ONNX; model.json names another format or a runtime', async () => {
    const dir = store({
      'm-onnx': { 'model.onnx': 'x', 'model.json': '{"labels":["a"]}' },
      'm-skl': { 'model.json': '{"format":"sklearn"}', 'model.joblib': 'x' },
      'm-pin': { 'model.json': '{"runtime":"triton"}' },
      'm-bad': { 'model.json': '{"format":7}' },
      'not-a-model': { 'readme.txt': 'x' },
    });
    const catalog = new Catalog(
      dir,
      dir,
      new ServingRuntimes(builtInServingRuntimes(), 'process', everywhere),
    );
    assert.deepEqual(await catalog.modelServing('m-onnx'), { format: 'onnx', runtime: undefined });
    assert.equal((await catalog.servingRuntime('m-onnx'))?.name, DEFAULT_SERVING_RUNTIME);
    assert.equal((await catalog.servingRuntime('m-skl'))?.name, 'mlserver');
    assert.equal((await catalog.servingRuntime('m-pin'))?.name, 'triton');
    await assert.rejects(catalog.servingRuntime('m-bad'), /"format" must be a non-empty string/);
    await catalog.requireModel('m-skl');
    await assert.rejects(catalog.requireModel('not-a-model'), /not found in the model store/);
    assert.deepEqual(await catalog.listModels(), ['m-bad', 'm-onnx', 'm-pin', 'm-skl']);
  });
});
