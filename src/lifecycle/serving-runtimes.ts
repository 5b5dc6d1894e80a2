/**
 * The serving-runtime catalog: which inference servers can be a worker, which model
 * formats each serves, and how each is started. Modeldock's own ONNX worker is the
 * default; NVIDIA Triton and Seldon MLServer are built in; an operator adds or replaces
 * entries with JSON files in the runtimes directory (docs/runtimes.md: the file format).
 *
 * A model picks its server the way KServe's ServingRuntimes do: model.json names its
 * `runtime` (that entry, which must serve the model's format), or its `format`, and then
 * the entries that auto-select that format compete by priority. An entry serves only
 * where this router can start it (a command for the process runtime, an image for
 * Docker and Kubernetes); a model no entry serves is refused with the formats that are.
 */
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { InvalidInputError } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';

type RuntimeKind = Runtime['kind'];

const NAME = '^[a-z0-9][a-z0-9-]{0,62}$';

const FormatSchema = Type.Object(
  {
    /** The format's name as model.json spells it, e.g. `onnx`, `sklearn`, `xgboost`. */
    name: Type.String({ pattern: NAME }),
    /** Among the entries that auto-select a format, the highest priority wins. */
    priority: Type.Integer({ minimum: 0, default: 1 }),
    /** False: the entry serves the format only for models whose model.json names it. */
    autoSelect: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);

const CommandSchema = Type.Object(
  {
    /** A program on the PATH or an absolute path (a wrapper script is fine). */
    command: Type.String({ minLength: 1 }),
    /** Arguments; `{port}`, `{grpcPort}`, `{metricsPort}`, `{host}` and `{modelsDir}` are filled in. */
    args: Type.Array(Type.String(), { default: [] }),
    /** Extra environment, with the same placeholders. */
    env: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), { default: {} }),
  },
  { additionalProperties: false },
);

const ServingRuntimeSchema = Type.Object(
  {
    name: Type.String({ pattern: NAME }),
    description: Type.String({ default: '' }),
    formats: Type.Array(FormatSchema, { minItems: 1 }),
    /** How the process runtime starts it; absent: it does not run as a local process. */
    process: Type.Optional(CommandSchema),
    /**
     * The image Docker runs; absent: it does not run in a container. It must hold
     * modeldock's guard (docs/runtimes.md); the server is started in it by `container`,
     * else by `process`.
     */
    image: Type.Optional(Type.String({ minLength: 1 })),
    /** The command that starts the server in its image, when it differs from `process`. */
    container: Type.Optional(CommandSchema),
    /**
     * A directory of the container on a small tmpfs of its own that allows running programs,
     * owned by the server's user, for a server that writes or chmods programs it then runs
     * (Triton's Python backend chmods its stub at every load). Absent: none; the root stays
     * read-only and /tmp noexec.
     */
    execDir: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9._/-]+$' })),
    /** Ports the server listens on inside its container (the process runtime picks free ones). */
    ports: Type.Object(
      { http: Type.Integer({ minimum: 1, maximum: 65535 }), grpc: Type.Optional(Type.Integer()) },
      { additionalProperties: false, default: { http: 8080 } },
    ),
    /** Open Inference Protocol paths the router polls. */
    health: Type.Object(
      {
        live: Type.String({ default: '/v2/health/live' }),
        ready: Type.String({ default: '/v2/health/ready' }),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * Whether one server holds several models. A single-model server is loaded under the
     * model's own id; modeldock's worker loads each job's model under the job id.
     */
    multiModel: Type.Boolean({ default: true }),
    /**
     * Memory behaviour on unload: `frees` (the server gives memory back) or `keeps` (it is
     * known to keep it: DEPLOY_UNLOAD restarts its worker instead).
     */
    unloadMemory: Type.Union([Type.Literal('frees'), Type.Literal('keeps')], { default: 'frees' }),
    /**
     * Whether the server accepts the binary tensor extension on HTTP. False (the default,
     * as the bring-your-own contract asks only JSON tensors): the router translates
     * clients' binary requests to JSON and the answer back (json-tensors.ts).
     */
    binaryTensors: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
);

export type ModelFormat = Static<typeof FormatSchema>;
export type ServingCommand = Static<typeof CommandSchema>;
export type ServingRuntime = Static<typeof ServingRuntimeSchema> & {
  /** Built in, or the file an operator's entry came from. */
  source: string;
  /** Modeldock's own worker: it checks the worker secret and serves every job of its model itself. */
  modeldockWorker: boolean;
};

/** The name of modeldock's ONNX worker entry: what a model without a format gets. */
export const DEFAULT_SERVING_RUNTIME = 'modeldock-onnx';

/** What model.json says about how the model is served. */
export interface ModelServing {
  /** Model format; a model directory with model.onnx and no format is `onnx`. */
  format?: string;
  /** An entry by name, bypassing auto-selection. */
  runtime?: string;
}

function entry(raw: unknown, source: string, modeldockWorker = false): ServingRuntime {
  const value = Value.Default(ServingRuntimeSchema, structuredClone(raw));
  if (!Value.Check(ServingRuntimeSchema, value)) {
    const first = Value.Errors(ServingRuntimeSchema, value).First();
    throw new InvalidInputError(
      `serving runtime ${source}: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`,
    );
  }
  return { ...value, source, modeldockWorker };
}

/** The images of the built-in entries that have one (`modeldock images` builds them). */
export interface BuiltInImages {
  /** MLServer with its scikit-learn runtime and modeldock's guard (MODELDOCK_MLSERVER_IMAGE). */
  mlserver?: string;
  /** Triton from the nvidia-pytriton wheel and modeldock's guard (MODELDOCK_TRITON_IMAGE). */
  triton?: string;
}

/** Triton in explicit model-control mode: it starts with no model, the router loads the job's. */
const TRITON_ARGS = [
  '--model-repository={modelsDir}',
  '--model-control-mode=explicit',
  '--http-address={host}',
  '--http-port={port}',
  '--grpc-address={host}',
  '--grpc-port={grpcPort}',
  '--metrics-port={metricsPort}',
  '--allow-metrics=false',
];

/** Where the triton image (image-builder.ts) holds the wheel's server. */
const TRITON_IN_IMAGE = '/opt/python/site-packages/pytriton/tritonserver';
/** Where Triton's backends run from in its container: a tmpfs of its own (execDir). */
const TRITON_EXEC_DIR = '/opt/triton-backends';

/**
 * The built-in entries. Triton and MLServer run from the PATH on the process runtime;
 * MLServer runs on Docker from the image `modeldock images mlserver` builds.
 */
export function builtInServingRuntimes(images: BuiltInImages = {}): ServingRuntime[] {
  return [
    entry(
      {
        name: DEFAULT_SERVING_RUNTIME,
        description: "modeldock's ONNX Runtime worker",
        formats: [{ name: 'onnx', priority: 2 }],
        multiModel: true,
        binaryTensors: true,
      },
      'built-in',
      true,
    ),
    entry(
      {
        name: 'triton',
        description: 'NVIDIA Triton Inference Server in explicit model-control mode',
        formats: ['onnx', 'tensorrt', 'pytorch', 'tensorflow', 'python'].map((name) => ({
          name,
          priority: 1,
        })),
        process: { command: 'tritonserver', args: TRITON_ARGS },
        // In its image: the wheel's server, given what scripts/tritonserver.sh gives it on a
        // machine (its backends and caches; the library path is the image's).
        ...(images.triton
          ? {
              image: images.triton,
              // The Python backend chmods its stub at every load and starts it through
              // bash: its backend is copied to the exec tmpfs (execDir) before the server
              // starts, so the image's files stay read-only.
              container: {
                command: '/usr/bin/bash',
                args: [
                  '-c',
                  `cp -r ${TRITON_IN_IMAGE}/backends/python ${TRITON_EXEC_DIR}/ && exec "$0" "$@"`,
                  `${TRITON_IN_IMAGE}/bin/tritonserver`,
                  `--backend-directory=${TRITON_EXEC_DIR}`,
                  `--cache-directory=${TRITON_IN_IMAGE}/caches`,
                  ...TRITON_ARGS,
                ],
              },
              execDir: TRITON_EXEC_DIR,
            }
          : {}),
        // In a container (the process runtime picks free ports): not 8000, the guard's.
        ports: { http: 8010, grpc: 8011 },
        multiModel: true,
        // Unloaded in place, then measured: a Python-backend model's stub exits and its
        // memory is back within a few MiB in about a millisecond, where a restart waits out
        // Triton's slow exit (docs/runtimes.md). A backend that keeps the memory in Triton's
        // allocator (triton-inference-server#3320) is caught by the measurement and restarted.
        unloadMemory: 'frees',
        binaryTensors: true,
      },
      'built-in',
    ),
    entry(
      {
        name: 'mlserver',
        description: 'Seldon MLServer',
        formats: ['sklearn', 'xgboost', 'lightgbm', 'mlflow'].map((name) => ({ name, priority: 1 })),
        process: {
          command: 'mlserver',
          args: ['start', '{modelsDir}'],
          env: {
            MLSERVER_HOST: '{host}',
            MLSERVER_HTTP_PORT: '{port}',
            MLSERVER_GRPC_PORT: '{grpcPort}',
            MLSERVER_METRICS_PORT: '{metricsPort}',
            MLSERVER_METRICS_ENDPOINT: '',
            MLSERVER_LOAD_MODELS_AT_STARTUP: 'false',
            MLSERVER_PARALLEL_WORKERS: '0',
          },
        },
        ...(images.mlserver ? { image: images.mlserver } : {}),
        ports: { http: 8080, grpc: 8081 },
        multiModel: true,
        // Unloaded models' memory stays with the Python process (SeldonIO/MLServer#986).
        unloadMemory: 'keeps',
        // It answers 422 to a binary body: the router translates to JSON for it.
        binaryTensors: false,
      },
      'built-in',
    ),
  ];
}

/**
 * The operator's entries: every `*.json` file of `dir` (a missing directory holds none).
 * An entry named like a built-in one replaces it. A malformed file stops the start with
 * its name and the first problem.
 */
export function readServingRuntimeFiles(dir: string): ServingRuntime[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((file) => file.endsWith('.json'));
  } catch {
    return [];
  }
  return files.sort().map((file) => {
    const source = path.join(dir, file);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(source, 'utf8'));
    } catch (cause) {
      throw new InvalidInputError(`serving runtime ${source}: not JSON`, { cause });
    }
    if (raw !== null && typeof raw === 'object' && 'modeldockWorker' in raw) {
      throw new InvalidInputError(`serving runtime ${source}: modeldockWorker is not a setting`);
    }
    return entry(raw, source);
  });
}

/** Whether `command` names an executable file, directly or on the PATH. */
export function commandExists(command: string, searchPath = process.env.PATH ?? ''): boolean {
  const candidates = command.includes('/')
    ? [command]
    : searchPath
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, command));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface ServingRuntimesOptions {
  /** Whether a command can be run here; default: an executable file on the PATH. */
  canRun?: (command: string) => boolean;
  /** The built-in entries' images. */
  images?: BuiltInImages;
}

export class ServingRuntimes {
  readonly entries: readonly ServingRuntime[];
  private readonly canRun: (command: string) => boolean;

  constructor(
    entries: ServingRuntime[],
    /** Where workers run: an entry serves only where it can be started. */
    private readonly kind: RuntimeKind,
    options: ServingRuntimesOptions = {},
  ) {
    const byName = new Map<string, ServingRuntime>();
    for (const e of entries) byName.set(e.name, e);
    this.entries = [...byName.values()];
    this.canRun = options.canRun ?? ((command) => commandExists(command));
  }

  /** The built-in entries with the operator's files of `dir` over them. */
  static load(dir: string, kind: RuntimeKind, options?: ServingRuntimesOptions): ServingRuntimes {
    return new ServingRuntimes(
      [...builtInServingRuntimes(options?.images), ...readServingRuntimeFiles(dir)],
      kind,
      options,
    );
  }

  /** Whether this router can start the entry's server on its runtime. */
  startable(e: ServingRuntime): boolean {
    if (e.modeldockWorker) return true;
    if (this.kind === 'process') return e.process !== undefined && this.canRun(e.process.command);
    // In a container or a Pod: the entry's image, with a command to start the server in it.
    return e.image !== undefined && (e.container ?? e.process) !== undefined;
  }

  /** Formats served here, sorted. */
  servedFormats(): string[] {
    const formats = new Set<string>();
    for (const e of this.entries) {
      if (this.startable(e)) for (const f of e.formats) formats.add(f.name);
    }
    return [...formats].sort();
  }

  /** The entry that serves a model, as KServe picks: named runtime, else best auto-selecting priority. */
  select(model: string, serving: ModelServing): ServingRuntime {
    const served = () => `; formats served here: ${this.servedFormats().join(', ') || 'none'}`;
    if (serving.runtime !== undefined) {
      const named = this.entries.find((e) => e.name === serving.runtime);
      if (!named) {
        throw new InvalidInputError(
          `model ${model} names serving runtime "${serving.runtime}", which is not in the catalog (${this.entries.map((e) => e.name).join(', ')})`,
        );
      }
      if (serving.format !== undefined && !named.formats.some((f) => f.name === serving.format)) {
        throw new InvalidInputError(
          `model ${model} has format "${serving.format}", which serving runtime ${named.name} does not serve (it serves ${named.formats.map((f) => f.name).join(', ')})`,
        );
      }
      if (!this.startable(named)) {
        throw new InvalidInputError(
          `model ${model} names serving runtime ${named.name}, which cannot be started on the ${this.kind} runtime (${this.why(named)})${served()}`,
        );
      }
      return named;
    }
    const format = serving.format;
    if (format === undefined) {
      throw new InvalidInputError(`model ${model} names no format in model.json${served()}`);
    }
    const candidates = this.entries
      .flatMap((e) => e.formats.filter((f) => f.name === format && f.autoSelect).map((f) => ({ e, f })))
      .filter(({ e }) => this.startable(e))
      // Highest priority first; on a tie the catalog's order (built-ins, then files by name).
      .sort((a, b) => b.f.priority - a.f.priority);
    const chosen = candidates[0]?.e;
    if (!chosen) {
      throw new InvalidInputError(
        `no serving runtime serves model ${model} of format "${format}"${served()}`,
        {
          details: { format, servedFormats: this.servedFormats() },
        },
      );
    }
    return chosen;
  }

  private why(e: ServingRuntime): string {
    if (this.kind !== 'process') return e.image ? 'the entry has no command' : 'the entry has no image';
    if (!e.process) return 'the entry has no process command';
    return `command ${e.process.command} not found`;
  }
}
