/**
 * Every Docker Engine API call modeldock makes, in one list: what the router (and
 * `modeldock images`) may ask of the engine, and nothing else. docs/security.md shows the
 * same table (a unit test keeps the two equal), and the recording-proxy test
 * (test/e2e/engine-calls.test.ts) puts a proxy between a real router and the engine and
 * fails on any call outside it.
 *
 * Paths are as the engine receives them, with dockerode's optional `/v1.NN` prefix left
 * out; `{id}` is a container id or name, which the runtime only ever takes from a
 * container that carries this instance's labels (docker-runtime.ts).
 */
export interface EngineCall {
  method: 'GET' | 'HEAD' | 'POST' | 'DELETE';
  /** The path as documented: `{id}` a container, `{name}` an image or volume name. */
  path: string;
  /** Changes something on the engine. */
  mutating: boolean;
  why: string;
}

export const ENGINE_CALLS: readonly EngineCall[] = [
  { method: 'GET', path: '/_ping', mutating: false, why: 'is the engine there (start-up, /readyz)' },
  { method: 'HEAD', path: '/_ping', mutating: false, why: 'is the engine there' },
  { method: 'GET', path: '/containers/json', mutating: false, why: 'list containers with our labels' },
  {
    method: 'GET',
    path: '/containers/{id}/json',
    mutating: false,
    why: 'inspect a worker (and find our own container)',
  },
  { method: 'GET', path: '/containers/{id}/logs', mutating: false, why: 'a failed worker’s last lines' },
  {
    method: 'GET',
    path: '/events',
    mutating: false,
    why: 'container events with our labels (the reconciler)',
  },
  { method: 'GET', path: '/images/{name}/json', mutating: false, why: 'is the worker image there' },
  {
    method: 'GET',
    path: '/volumes/{name}',
    mutating: false,
    why: 'the store volume (router in a container)',
  },
  { method: 'POST', path: '/containers/create', mutating: true, why: 'create a worker (hardened, labelled)' },
  { method: 'POST', path: '/containers/{id}/start', mutating: true, why: 'start a worker' },
  { method: 'POST', path: '/containers/{id}/stop', mutating: true, why: 'stop a worker' },
  { method: 'POST', path: '/containers/{id}/kill', mutating: true, why: 'kill a worker that does not stop' },
  {
    method: 'POST',
    path: '/containers/{id}/rename',
    mutating: true,
    why: 'hand a warm-pool worker to a server',
  },
  {
    method: 'POST',
    path: '/containers/{id}/wait',
    mutating: false,
    why: 'wait for the one-shot store-seeding container',
  },
  { method: 'DELETE', path: '/containers/{id}', mutating: true, why: 'remove a worker' },
  {
    method: 'POST',
    path: '/volumes/create',
    mutating: true,
    why: 'the store volume (router in a container)',
  },
  { method: 'POST', path: '/build', mutating: true, why: 'build the worker/router image when missing' },
  { method: 'POST', path: '/images/create', mutating: true, why: 'pull the Node.js base image for a build' },
];

const SEGMENT = '[^/]+';

function patternOf(call: EngineCall): RegExp {
  const body = call.path
    .split('/')
    .map((part) =>
      part === '{id}' ? SEGMENT : part === '{name}' ? '.+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return new RegExp(`^(?:/v\\d+\\.\\d+)?${body}$`);
}

const PATTERNS = ENGINE_CALLS.map((call) => ({ call, pattern: patternOf(call) }));

/** The allow-list entry a request (method and path, without the query) falls under, if any. */
export function engineCallOf(method: string, path: string): EngineCall | undefined {
  return PATTERNS.find(({ call, pattern }) => call.method === method && pattern.test(path))?.call;
}

/** The container a `/containers/{id}/…` path names, if it names one. */
export function containerOf(path: string): string | undefined {
  const match = /^(?:\/v\d+\.\d+)?\/containers\/([^/]+)(?:\/[a-z]+)?$/.exec(path);
  return match && match[1] !== 'json' && match[1] !== 'create' ? decodeURIComponent(match[1]!) : undefined;
}
