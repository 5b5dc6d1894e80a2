/**
 * Builds modeldock's images on a machine with no registry. Dockerfiles stay
 * conventional (`ARG BASE_IMAGE=node:20-bookworm-slim`); when that base can be neither
 * found locally nor pulled, a local base (`modeldock/node-base:20`) is made FROM scratch
 * from the host's Node.js binary and the shared libraries `ldd` lists.
 *
 * Contexts are staged under build/images/<kind>-XXXXXX/ (one per build, removed after):
 * the app is bundled with esbuild into one file, with the native modules
 * (onnxruntime-node, better-sqlite3) copied beside it for linux-x64 only, so images
 * stay lean.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import tar from 'tar-fs';
import { RuntimeUnavailableError, errorMessage } from '../../errors.js';

export type ImageKind = 'worker' | 'router' | 'mlserver' | 'triton';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const STAGING = path.join(REPO_ROOT, 'build', 'images');
export const DEFAULT_BASE_IMAGE = 'node:20-bookworm-slim';
export const LOCAL_BASE_IMAGE = 'modeldock/node-base:20';

type Progress = (line: string) => void;

export async function imageExists(docker: Dockerode, tag: string): Promise<boolean> {
  try {
    await docker.getImage(tag).inspect();
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw new RuntimeUnavailableError(`cannot inspect image ${tag}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/** Builds only when the image is missing. */
export async function ensureImage(docker: Dockerode, kind: ImageKind, tag: string, onProgress?: Progress) {
  if (await imageExists(docker, tag)) return;
  onProgress?.(`image ${tag} is missing: building it`);
  await buildImage(docker, kind, tag, onProgress);
}

export async function buildImage(
  docker: Dockerode,
  kind: ImageKind,
  tag: string,
  onProgress: Progress = () => {},
) {
  const baseImage = await resolveBaseImage(docker, onProgress);
  // The foreign servers' images add a Python of the host's with their packages (built
  // once per package set) under Node.js and the guard.
  const python = PYTHON_IMAGES[kind];
  const buildArgs: Record<string, string> = python
    ? { NODE_BASE: baseImage, ...(await ensurePythonBase(docker, python, onProgress)) }
    : { BASE_IMAGE: baseImage };
  // A context of its own per build, so builds running at the same time never mix files.
  const context = await stagingDir(kind);
  try {
    await mkdir(path.join(context, 'app'), { recursive: true });
    onProgress(`staging the ${kind} build context in ${path.relative(REPO_ROOT, context)}`);
    await STAGERS[kind](path.join(context, 'app'));
    if (python) {
      // The engine gives the container's /tmp (a tmpfs) the image's /tmp mode: writable
      // by every user, as Triton's Python backend needs (foreign-server.Dockerfile).
      await mkdir(path.join(context, 'tmp-mode', 'tmp'), { recursive: true });
      await chmod(path.join(context, 'tmp-mode', 'tmp'), 0o1777);
    }
    const dockerfile = python ? 'foreign-server.Dockerfile' : `${kind}.Dockerfile`;
    await cp(path.join(REPO_ROOT, 'docker', dockerfile), path.join(context, 'Dockerfile'));
    await dockerBuild(docker, context, tag, buildArgs, onProgress);
  } finally {
    await rm(context, { recursive: true, force: true });
  }
  const size = (await docker.getImage(tag).inspect()).Size;
  onProgress(`built ${tag} (${Math.round(size / 1e6)} MB) on ${baseImage}`);
}

/** node:20-bookworm-slim when present or pullable, else the local base (built once). */
async function resolveBaseImage(docker: Dockerode, onProgress: Progress): Promise<string> {
  const wanted = process.env.MODELDOCK_BASE_IMAGE || DEFAULT_BASE_IMAGE;
  if (await imageExists(docker, wanted)) return wanted;
  try {
    onProgress(`pulling ${wanted}`);
    const stream = await docker.pull(wanted);
    await new Promise<void>((resolve, reject) =>
      docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve())),
    );
    return wanted;
  } catch (error) {
    onProgress(`cannot pull ${wanted} (${errorMessage(error).split('\n')[0]}); using a local base image`);
  }
  if (!(await imageExists(docker, LOCAL_BASE_IMAGE))) await buildLocalBase(docker, onProgress);
  return LOCAL_BASE_IMAGE;
}

async function stagingDir(kind: string): Promise<string> {
  await mkdir(STAGING, { recursive: true });
  return mkdtemp(path.join(STAGING, `${kind}-`));
}

async function buildLocalBase(docker: Dockerode, onProgress: Progress): Promise<void> {
  const context = await stagingDir('base');
  try {
    await stageLocalBase(context, onProgress);
    await dockerBuild(docker, context, LOCAL_BASE_IMAGE, {}, onProgress);
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}

async function stageLocalBase(context: string, onProgress: Progress): Promise<void> {
  const rootfs = path.join(context, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  const binaries = [
    process.execPath,
    ...(await nativeFiles(path.join(REPO_ROOT, 'node_modules/onnxruntime-node/bin'))),
    path.join(REPO_ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'),
  ];
  const libraries = new Set<string>();
  for (const binary of binaries) for (const lib of await sharedLibraries(binary)) libraries.add(lib);
  await mkdir(path.join(rootfs, 'usr/local/bin'), { recursive: true });
  await cp(process.execPath, path.join(rootfs, 'usr/local/bin/node'), { dereference: true });
  for (const lib of libraries) {
    // Copy the resolved file under the name the loader looks for.
    await mkdir(path.join(rootfs, path.dirname(lib)), { recursive: true });
    await cp(lib, path.join(rootfs, lib), { dereference: true });
  }
  await mkdir(path.join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
  await mkdir(path.join(rootfs, 'etc'), { recursive: true });
  await writeFile(
    path.join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/sbin/nologin\nmodeldock:x:10001:10001::/tmp:/sbin/nologin\n',
  );
  await writeFile(path.join(rootfs, 'etc/group'), 'root:x:0:\nmodeldock:x:10001:\n');
  await cp(path.join(REPO_ROOT, 'docker', 'base.Dockerfile'), path.join(context, 'Dockerfile'));
  onProgress(
    `building ${LOCAL_BASE_IMAGE} from this machine's node ${process.version} and ${libraries.size} libraries`,
  );
}

/** ONNX Runtime's linux-x64 binaries, whichever N-API version directory holds them. */
async function nativeFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const napi of (await readdir(dir).catch(() => [] as string[])).filter((d) => /^napi-v\d+$/.test(d))) {
    const linux = path.join(dir, napi, 'linux', 'x64');
    for (const entry of await readdir(linux).catch(() => [] as string[])) files.push(path.join(linux, entry));
  }
  return files;
}

/** Absolute paths of the shared libraries a binary loads, as `ldd` resolves them. */
async function sharedLibraries(binary: string, env: Record<string, string> = {}): Promise<string[]> {
  const { stdout } = await run('ldd', [binary], { env: { ...process.env, ...env } });
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (match && !match[1]!.startsWith(REPO_ROOT)) libs.push(match[1]!);
  }
  return libs;
}

async function bundle(entry: string, outfile: string, external: string[]): Promise<void> {
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [path.join(REPO_ROOT, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    external,
    minify: false,
    legalComments: 'none',
    logLevel: 'warning',
    // CommonJS dependencies bundled into ESM still call require() and read __dirname.
    banner: {
      js: [
        "import { createRequire as __createRequire } from 'node:module';",
        "import { fileURLToPath as __fileURLToPath } from 'node:url';",
        "import { dirname as __pathDirname } from 'node:path';",
        'const require = __createRequire(import.meta.url);',
        'const __filename = __fileURLToPath(import.meta.url);',
        'const __dirname = __pathDirname(__filename);',
      ].join(' '),
    },
  });
}

async function copyPackage(name: string, destination: string, filter?: (file: string) => boolean) {
  const source = path.join(REPO_ROOT, 'node_modules', name);
  await cp(source, path.join(destination, 'node_modules', name), {
    recursive: true,
    dereference: true,
    filter: (file) => {
      const relative = path.relative(source, file);
      if (relative.startsWith('node_modules')) return false;
      return filter ? filter(relative) : true;
    },
  });
}

async function stageWorker(app: string): Promise<void> {
  await bundle('src/worker/main.ts', path.join(app, 'worker.mjs'), ['onnxruntime-node']);
  // The guard too, so that an image built FROM the worker's can serve a foreign server.
  await stageGuard(app);
  // The gRPC service definition the worker serves too (src/worker/grpc-service.ts).
  await cp(path.join(REPO_ROOT, 'src/inference-grpc/inference.proto'), path.join(app, 'inference.proto'));
  // Only the linux-x64 runtime binaries: the package also carries darwin and win32 (~220 MB).
  await copyPackage('onnxruntime-node', app, (file) => {
    if (!file.startsWith('bin')) return !file.startsWith('script');
    return file === 'bin' || /^bin\/napi-v\d+($|\/linux($|\/x64))/.test(file);
  });
  await copyPackage('onnxruntime-common', app);
  await writePackageJson(app);
}

async function stageRouter(app: string): Promise<void> {
  await bundle('src/cli/main.ts', path.join(app, 'router.mjs'), [
    'better-sqlite3',
    'esbuild',
    'onnxruntime-node',
    'cpu-features',
    // Vega's optional node-canvas (not installed): it renders SVG without it.
    'canvas',
    '*.node',
  ]);
  // The web console the router serves at /ui, built beside the bundle (routes/console.ts).
  const consoleBuild = pathToFileURL(path.join(REPO_ROOT, 'scripts', 'build-console.mjs')).href;
  const { buildConsole } = (await import(consoleBuild)) as { buildConsole(outdir: string): Promise<string> };
  await buildConsole(path.join(app, 'console'));
  await copyPackage(
    'better-sqlite3',
    app,
    (file) => !/^(deps|src)(\/|$)/.test(file) && !file.includes('obj.target'),
  );
  for (const dependency of ['bindings', 'file-uri-to-path']) await copyPackage(dependency, app);
  // The gRPC service definition, read at start-up beside the bundle (src/inference-grpc/service-definition.ts).
  await cp(path.join(REPO_ROOT, 'src/inference-grpc/inference.proto'), path.join(app, 'inference.proto'));
  // The example store, for a router started without a mounted store (see self-container.ts).
  await cp(path.join(REPO_ROOT, 'models'), path.join(app, 'example', 'models'), { recursive: true });
  await cp(path.join(REPO_ROOT, 'datasets'), path.join(app, 'example', 'datasets'), { recursive: true });
  await writePackageJson(app);
}

/** The guard in front of a foreign server (src/worker/guard-main.ts), one file. */
async function stageGuard(app: string): Promise<void> {
  await bundle('src/worker/guard-main.ts', path.join(app, 'guard.mjs'), []);
}

/** ESM for the bundle, and the project's version for src/version.ts to report. */
async function writePackageJson(app: string): Promise<void> {
  const { version } = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  await writeFile(
    path.join(app, 'package.json'),
    JSON.stringify({ type: 'module', private: true, version }) + '\n',
  );
}

/** What goes into each image's app/ directory. Adding an image kind is one entry here. */
const STAGERS: Record<ImageKind, (app: string) => Promise<void>> = {
  worker: stageWorker,
  router: stageRouter,
  mlserver: stageGuard,
  triton: stageGuard,
};

/**
 * The venvs scripts/python-venv.sh makes (`python-venv`, and `triton-venv` for Triton's
 * server), where the foreign servers' images take their packages from: no registry is
 * asked, the wheels pip installed there are copied.
 */
export function pythonVenv(name = 'python-venv'): string {
  const cache =
    process.env.MODELDOCK_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'modeldock');
  return path.join(cache, name);
}

/** What a foreign server's image takes of a venv. */
interface PythonImage {
  venv: string;
  /** Distributions copied with everything they require. */
  packages: string[];
  /** A console script to write into /usr/local/bin: name → `module:function`. */
  scripts: Record<string, string>;
  /** Directories under site-packages with shared libraries the server loads (LD_LIBRARY_PATH). */
  libraryDirs: string[];
  /** Files under site-packages that no package lists (put there after installing). */
  extraFiles: string[];
  /** Programs under site-packages whose shared libraries the image needs too. */
  programs: string[];
  /** Programs of this machine the server runs (with their libraries), at their own paths. */
  hostPrograms: string[];
}

const PYTHON_IMAGES: Partial<Record<ImageKind, PythonImage>> = {
  // MLServer, its scikit-learn runtime, scikit-learn.
  mlserver: {
    venv: 'python-venv',
    packages: ['mlserver', 'mlserver-sklearn', 'scikit-learn'],
    scripts: { mlserver: 'mlserver.cli:main' },
    libraryDirs: [],
    extraFiles: [],
    programs: [],
    hostPrograms: [],
  },
  // Triton's server, backends and Python backend from the nvidia-pytriton wheel, with the
  // numpy its Python backend's models import.
  triton: {
    venv: 'triton-venv',
    packages: ['nvidia-pytriton', 'numpy'],
    scripts: {},
    libraryDirs: ['nvidia_pytriton.libs'],
    // The Python backend's stub for the venv's Python, which scripts/install-tritonserver.sh
    // copies into place from the wheel's stubs of every version.
    extraFiles: ['pytriton/tritonserver/backends/python/triton_python_backend_stub'],
    programs: [
      'pytriton/tritonserver/bin/tritonserver',
      'pytriton/tritonserver/backends/python/triton_python_backend_stub',
    ],
    // The Python backend starts its stub through `bash -c`; the server's container command
    // copies the backend to its exec tmpfs with `cp` (serving-runtimes.ts). Only this image has them.
    hostPrograms: ['/usr/bin/bash', '/usr/bin/cp'],
  },
};

/** Where a Python image's packages are, in the image. */
export const IMAGE_SITE_PACKAGES = '/opt/python/site-packages';

interface PythonClosure {
  executable: string;
  sharedLibraries: string[];
  baseSitePackages: string;
  version: string;
  stdlibFiles: string[];
  sitePackages: string;
  files: string[];
  digest: string;
}

/**
 * A base image holding the host's Python interpreter and standard library (at their own
 * paths, so the interpreter finds its library), the venv's `packages` and everything they
 * require under /opt/python/site-packages, and the shared libraries all of it loads. Its
 * tag carries a digest of the interpreter and the package versions, so it is built only
 * when one of them changes (the large part of the image, shared by every checkout).
 */
async function ensurePythonBase(
  docker: Dockerode,
  image: PythonImage,
  onProgress: Progress,
): Promise<{ PYTHON_BASE: string; LIBRARY_PATH: string }> {
  const venv = pythonVenv(image.venv);
  const python = path.join(venv, 'bin', 'python');
  const packages = image.packages;
  let closure: PythonClosure;
  try {
    const { stdout } = await run(python, [path.join(REPO_ROOT, 'docker', 'python-closure.py'), ...packages], {
      maxBuffer: 256 * 1024 ** 2,
    });
    closure = JSON.parse(stdout) as PythonClosure;
  } catch (error) {
    throw new RuntimeUnavailableError(
      `cannot read ${packages.join(', ')} from the venv ${venv} (bash scripts/python-venv.sh installs them): ${errorMessage(error).split('\n')[0]}`,
      { cause: error },
    );
  }
  // Where the interpreter's own library is, and the libraries a wheel carries.
  const libraryPath = [
    ...image.libraryDirs.map((dir) => path.posix.join(IMAGE_SITE_PACKAGES, dir)),
    ...new Set(closure.sharedLibraries.map((lib) => path.dirname(lib))),
  ].join(':');
  const digest = createHash('sha256')
    .update([closure.digest, ...image.hostPrograms].join('\n'))
    .digest('hex');
  const tag = `modeldock/python-base:v3-${digest.slice(0, 16)}`;
  const built = { PYTHON_BASE: tag, LIBRARY_PATH: libraryPath };
  if (await imageExists(docker, tag)) return built;
  const context = await stagingDir('python');
  try {
    const rootfs = path.join(context, 'rootfs');
    onProgress(`staging ${tag}: python ${closure.version} and ${closure.files.length} package files`);
    const copies: [string, string][] = [
      [closure.executable, closure.executable],
      ...image.hostPrograms.map((program): [string, string] => [program, program]),
      ...closure.sharedLibraries.map((lib): [string, string] => [lib, lib]),
      ...closure.stdlibFiles.map((file): [string, string] => [file, file]),
      ...[...closure.files, ...image.extraFiles].map((file): [string, string] => [
        path.join(closure.sitePackages, file),
        path.join(IMAGE_SITE_PACKAGES, file),
      ]),
    ];
    const programs = new Set([
      closure.executable,
      ...image.hostPrograms,
      ...image.programs.map((file) => path.join(IMAGE_SITE_PACKAGES, file)),
    ]);
    const binaries = copies
      .map(([, target]) => target)
      .filter((target) => programs.has(target) || /\.so(\.|$)/.test(target));
    for (const [source, target] of copies) {
      await mkdir(path.join(rootfs, path.dirname(target)), { recursive: true });
      await cp(source, path.join(rootfs, target), { dereference: true });
    }
    const libraries = new Set<string>();
    for (const binary of binaries) {
      const found = await sharedLibraries(path.join(rootfs, binary), {
        LD_LIBRARY_PATH: libraryPath
          .split(':')
          .map((dir) => path.join(rootfs, dir))
          .join(':'),
      }).catch(() => [] as string[]);
      for (const lib of found) {
        // Libraries a wheel carries (numpy.libs/…) are copied with it already.
        if (!lib.startsWith(rootfs)) libraries.add(lib);
      }
    }
    for (const lib of libraries) {
      await mkdir(path.join(rootfs, path.dirname(lib)), { recursive: true });
      await cp(lib, path.join(rootfs, lib), { dereference: true });
    }
    // Console scripts as the image's own: their interpreter is the copied one.
    await mkdir(path.join(rootfs, 'usr/local/bin'), { recursive: true });
    for (const [name, entry] of Object.entries(image.scripts)) {
      const [module, func] = entry.split(':');
      await writeFile(
        path.join(rootfs, 'usr/local/bin', name),
        `#!${closure.executable}\nimport sys\nfrom ${module} import ${func}\nsys.exit(${func}())\n`,
        { mode: 0o755 },
      );
    }
    // The packages on the interpreter's own path too, for an interpreter that runs isolated
    // and ignores PYTHONPATH (Triton's Python backend stub embeds one).
    await mkdir(path.join(rootfs, closure.baseSitePackages), { recursive: true });
    await writeFile(path.join(rootfs, closure.baseSitePackages, 'modeldock.pth'), `${IMAGE_SITE_PACKAGES}\n`);
    await mkdir(path.join(rootfs, 'tmp'), { recursive: true, mode: 0o1777 });
    await cp(path.join(REPO_ROOT, 'docker', 'python-base.Dockerfile'), path.join(context, 'Dockerfile'));
    onProgress(`building ${tag} (${libraries.size} shared libraries from this machine)`);
    await dockerBuild(docker, context, tag, {}, onProgress);
  } finally {
    await rm(context, { recursive: true, force: true });
  }
  return built;
}

async function dockerBuild(
  docker: Dockerode,
  context: string,
  tag: string,
  buildargs: Record<string, string>,
  onProgress: Progress,
): Promise<void> {
  await stat(path.join(context, 'Dockerfile'));
  // Modes as staged (umask 0): tar-fs would otherwise take the sticky /tmp's 1777 down to
  // 1755. tar-fs reads `umask` in pack too; its typings list it for extract only.
  const packOptions = { umask: 0 } as unknown as tar.PackOptions;
  const stream = await docker.buildImage(tar.pack(context, packOptions) as unknown as NodeJS.ReadableStream, {
    t: tag,
    buildargs,
    rm: true,
    forcerm: true,
    labels: { 'modeldock.image': 'true' },
  });
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(
      stream,
      (error: Error | null, output: { error?: string }[] = []) => {
        const failed = error?.message ?? output.find((o) => o.error)?.error;
        if (failed) reject(new Error(`building ${tag} failed: ${failed}`));
        else resolve();
      },
      (event: { stream?: string; status?: string; error?: string }) => {
        const line = (event.stream ?? event.status ?? event.error ?? '').trimEnd();
        if (line) onProgress(line);
      },
    ),
  );
}
