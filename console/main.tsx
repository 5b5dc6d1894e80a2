/**
 * The modeldock web console (served by the router at /ui). Preact: a few kilobytes for
 * components and state, the rest of the bundle is this file and the SSE parser.
 *
 * Job and server states are live: one /v1/events stream drives them (no polling). The
 * charts (operation steps, worker memory) are SVG rendered by the router with the same
 * library as the benchmark charts (Vega-Lite), fetched again when an event says they
 * changed; worker memory changes without events, so that chart is also refreshed every
 * MEMORY_REFRESH_MS while the page is visible.
 */
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, apiKey, get, getText, post, streamEvents, streamText } from './api.js';
import type {
  JobView as Job,
  OperationView as Operation,
  PoolView as Pool,
  ServerView as Server,
  WorkerSampleView as WorkerSample,
} from '../src/api/wire-types.js';

const LIVE = 'creating,loading,ready,unloading,unloaded,terminating,failed';
const MEMORY_REFRESH_MS = 10_000;
/** Waits before connecting the event stream again: doubled per failure, reset once live. */
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 10_000;

const mib = (bytes: number | null | undefined) =>
  bytes == null ? '–' : `${(bytes / 1048576).toFixed(0)} MiB`;
const ms = (value: number | null) =>
  value == null ? '–' : value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(2)} s`;

function App() {
  /** Why the key prompt shows (null: it does not). */
  const [keyPrompt, setKeyPrompt] = useState<string | null>(null);
  const [connected, setConnected] = useState(false);
  const [servers, setServers] = useState<Map<string, Server>>(new Map());
  const [operations, setOperations] = useState<Operation[]>([]);
  /** The warm pool as last read, or why it could not be read. */
  const [pool, setPool] = useState<{ view: Pool } | { error: string } | null>(null);
  const [stats, setStats] = useState<Map<string, WorkerSample>>(new Map());
  /** Each job's replica bounds and desired count (ready ones are counted from the live servers). */
  const [replicas, setReplicas] = useState<Map<string, Job['replicas']>>(new Map());
  const [catalog, setCatalog] = useState<{ models: string[]; datasets: string[] }>({
    models: [],
    datasets: [],
  });
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const [logJob, setLogJob] = useState<string>('');
  const [charts, setCharts] = useState<{ operations: string; memory: string }>({
    operations: '',
    memory: '',
  });
  const [epoch, setEpoch] = useState(0); // bumped to reconnect (a key entered, the stream broken)
  const reconnectDelay = useRef(RECONNECT_FIRST_MS);

  const fail = useCallback((error: unknown) => {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      // A refused key is forgotten, so the prompt starts empty and says what was wrong.
      const had = apiKey.get() !== null;
      apiKey.clear();
      setKeyPrompt(
        error.status === 403
          ? 'That key may only run inference; the console needs an admin key (MODELDOCK_API_KEY).'
          : had
            ? 'The router refused that key.'
            : 'This router asks for an API key.',
      );
    } else setMessage({ text: error instanceof Error ? error.message : String(error), error: true });
  }, []);

  const refreshOperationsChart = useCallback(
    latestOnly(async (isLatest) => {
      const svg = await getText('/v1/charts/operations.svg?limit=12').catch(fail);
      if (svg && isLatest()) setCharts((c) => ({ ...c, operations: svg }));
    }),
    [fail],
  );
  const refreshMemory = useCallback(
    latestOnly(async (isLatest) => {
      const [sample, svg] = await Promise.all([
        get<{ workers: WorkerSample[] }>('/v1/stats').catch(() => undefined),
        getText('/v1/charts/memory.svg').catch(() => undefined),
      ]);
      if (!isLatest()) return;
      if (sample) setStats(new Map(sample.workers.map((w) => [w.container_name, w])));
      if (svg) setCharts((c) => ({ ...c, memory: svg }));
    }),
    [],
  );
  // Once per burst of server events (latestOnly), not once per event; a refusal of the key
  // goes to the prompt, any other error is shown in the pool's card instead of its figures.
  const refreshPool = useCallback(
    latestOnly(async (isLatest) => {
      const read = await get<Pool>('/v1/pool').then(
        (view) => ({ view }),
        (error: unknown) => {
          if (error instanceof ApiError && (error.status === 401 || error.status === 403)) fail(error);
          return { error: error instanceof Error ? error.message : String(error) };
        },
      );
      if (isLatest()) setPool(read);
    }),
    [fail],
  );
  const refreshReplicas = useCallback(
    latestOnly(async (isLatest) => {
      const answer = await get<{ jobs: Job[] }>('/v1/jobs').catch(() => undefined);
      if (answer && isLatest()) setReplicas(new Map(answer.jobs.map((j) => [j.job_id, j.replicas])));
    }),
    [],
  );

  // The live picture: subscribe first, then read the current state, so nothing is missed.
  useEffect(() => {
    const abort = new AbortController();
    let loaded = false;
    const pending: [string, unknown][] = [];
    const apply = (type: string, data: unknown) => {
      if (type === 'server') {
        const server = (data as { server: Server }).server;
        setServers((previous) => {
          const next = new Map(previous);
          if (server.state === 'terminated') next.delete(server.server_id);
          else next.set(server.server_id, server);
          return next;
        });
        refreshPool();
        refreshMemory();
      } else if (type === 'operation') {
        const operation = (data as { operation: Operation }).operation;
        setOperations((previous) =>
          [operation, ...previous.filter((o) => o.operation_id !== operation.operation_id)].slice(0, 30),
        );
        refreshOperationsChart();
        // An operation may have changed a job's replicas (created, scaled, terminated).
        refreshReplicas();
      }
    };
    const onOpen = () => {
      setConnected(true);
      reconnectDelay.current = RECONNECT_FIRST_MS;
      Promise.all([
        get<{ servers: Server[] }>(`/v1/servers?state=${LIVE}`),
        get<{ operations: Operation[] }>('/v1/operations?limit=30'),
        get<{ models: { id?: string; model?: string }[] | string[] }>('/v1/models'),
        get<{ datasets: { id?: string; dataset?: string }[] | string[] }>('/v1/datasets'),
      ]).then(([s, o, m, d]) => {
        setServers(new Map(s.servers.map((x) => [x.server_id, x])));
        setOperations(o.operations);
        setCatalog({ models: m.models.map(catalogId), datasets: d.datasets.map(catalogId) });
        loaded = true;
        for (const [type, data] of pending.splice(0)) apply(type, data);
        refreshPool();
        refreshMemory();
        refreshOperationsChart();
        refreshReplicas();
      }, fail);
    };
    let reconnect: ReturnType<typeof setTimeout> | undefined;
    streamEvents(abort.signal, onOpen, (type, data) =>
      loaded ? apply(type, data) : pending.push([type, data]),
    )
      .then(
        () => true,
        (error: unknown) => {
          if (abort.signal.aborted) return false;
          // An answer (a refused key, a 5xx) is shown; a broken connection only turns the
          // status to disconnected while we connect again.
          if (error instanceof ApiError) fail(error);
          return !(error instanceof ApiError && (error.status === 401 || error.status === 403));
        },
      )
      .then((again) => {
        setConnected(false);
        // The stream breaks when the network does (the router restarting, a proxy's idle
        // timeout, the host's interfaces changing): connect again — which reloads the
        // snapshot, so nothing that happened in between is missed — backing off while the
        // router stays away. A refused key waits for the prompt instead.
        if (!again || abort.signal.aborted) return;
        reconnect = setTimeout(() => setEpoch((e) => e + 1), reconnectDelay.current);
        reconnectDelay.current = Math.min(reconnectDelay.current * 2, RECONNECT_MAX_MS);
      });
    return () => {
      abort.abort();
      clearTimeout(reconnect);
    };
  }, [epoch, fail, refreshMemory, refreshOperationsChart, refreshPool, refreshReplicas]);

  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') refreshMemory();
    }, MEMORY_REFRESH_MS);
    return () => clearInterval(timer);
  }, [refreshMemory]);

  const act = async (label: string, run: () => Promise<{ operation: Operation; result?: unknown }>) => {
    setMessage({ text: `${label}…`, error: false });
    try {
      const outcome = await run();
      const result = outcome.result as { count?: number; accuracy?: number | null } | undefined;
      const summary =
        result?.count !== undefined
          ? ` — ${result.count} records, accuracy ${result.accuracy == null ? 'n/a' : `${(result.accuracy * 100).toFixed(1)} %`}`
          : '';
      setMessage({
        text: `${label}: ${outcome.operation.status} in ${ms(outcome.operation.duration_ms)}${summary}`,
        error: false,
      });
    } catch (error) {
      fail(error);
    }
  };

  if (keyPrompt !== null) {
    return (
      <KeyPrompt
        reason={keyPrompt}
        onKey={(key) => {
          apiKey.set(key);
          setKeyPrompt(null);
          setMessage(null);
          setEpoch((e) => e + 1);
        }}
      />
    );
  }

  const list = [...servers.values()].sort(
    (a, b) => a.job_id.localeCompare(b.job_id) || a.server_id.localeCompare(b.server_id),
  );
  /** `ready/desired (min..max)` of a job, as `modeldock ps` shows it. */
  const replicaCount = (jobId: string) => {
    const bounds = replicas.get(jobId);
    const ready = list.filter((s) => s.job_id === jobId && s.state === 'ready').length;
    return bounds ? `${ready}/${bounds.desired} (${bounds.min}..${bounds.max})` : `${ready}`;
  };
  return (
    <>
      <header>
        <h1>modeldock</h1>
        <span class={`live ${connected ? 'on' : 'off'}`} role="status" aria-live="polite">
          {connected ? 'live' : 'disconnected'}
        </span>
        {apiKey.get() ? (
          <button
            type="button"
            class="link"
            onClick={() => (apiKey.clear(), setKeyPrompt('This router asks for an API key.'))}
          >
            Forget API key
          </button>
        ) : null}
      </header>
      {message ? (
        <p class={message.error ? 'message error' : 'message'} role={message.error ? 'alert' : 'status'}>
          {message.text}
        </p>
      ) : null}
      <main>
        <section aria-labelledby="servers-title" class="wide">
          <h2 id="servers-title">Jobs and servers</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Job</th>
                <th scope="col" title="ready / desired replicas of the job (min..max)">
                  Replicas
                </th>
                <th scope="col">Server</th>
                <th scope="col">State</th>
                <th scope="col">Model</th>
                <th scope="col">Container</th>
                <th scope="col">Memory</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {list.length === 0 ? (
                <tr>
                  <td colSpan={8}>No live servers. Create one below.</td>
                </tr>
              ) : null}
              {list.map((s) => (
                <tr key={s.server_id} data-job={s.job_id}>
                  <th scope="row">{s.job_id}</th>
                  <td data-testid={`replicas-${s.job_id}`}>{replicaCount(s.job_id)}</td>
                  <td>{s.server_id}</td>
                  <td>
                    <span
                      class={`state ${s.state}`}
                      data-testid={`state-${s.job_id}`}
                      title={s.reason ?? undefined}
                    >
                      {s.state}
                    </span>
                  </td>
                  <td>{s.model}</td>
                  <td data-testid={`container-${s.job_id}`}>
                    {s.container_name}
                    {s.placement === 'shared' ? (
                      <span class="placement" title="a shared worker: it hosts other jobs' models too">
                        {' '}
                        (shared)
                      </span>
                    ) : null}
                  </td>
                  <td>{mib(stats.get(s.container_name)?.memory_bytes)}</td>
                  <td class="actions">
                    {(['load', 'unload', 'terminate'] as const).map((action) => (
                      <button
                        type="button"
                        key={action}
                        aria-label={`${action} ${s.job_id}`}
                        onClick={() =>
                          act(`${action} ${s.job_id}`, () =>
                            post(`/v1/jobs/${encodeURIComponent(s.job_id)}/${action}`),
                          )
                        }
                      >
                        {action}
                      </button>
                    ))}
                    <button
                      type="button"
                      aria-label={`logs of ${s.job_id}`}
                      onClick={() => setLogJob(s.job_id)}
                    >
                      logs
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>

        <section aria-labelledby="create-title">
          <h2 id="create-title">Create or run TEMP</h2>
          <CreateForm catalog={catalog} act={act} />
        </section>

        <section aria-labelledby="pool-title">
          <h2 id="pool-title">Warm pool and memory budget</h2>
          {pool && 'error' in pool ? (
            <p class="error" role="alert">
              Could not read the pool: {pool.error}
            </p>
          ) : pool ? (
            <dl class="pool">
              <dt>Configured size</dt>
              <dd>{pool.view.size}</dd>
              <dt>Kept now</dt>
              <dd>
                {pool.view.limit}
                {pool.view.bounded_by ? ` (bounded by ${pool.view.bounded_by})` : ''}
              </dd>
              <dt>Ready / starting</dt>
              <dd>
                {pool.view.ready} / {pool.view.filling}
              </dd>
              <dt>Per worker</dt>
              <dd>{mib(pool.view.worker_bytes)}</dd>
              <dt>Budget free</dt>
              <dd>
                {pool.view.budget_free_bytes == null ? 'no memory budget' : mib(pool.view.budget_free_bytes)}
              </dd>
            </dl>
          ) : (
            <p>…</p>
          )}
        </section>

        <section aria-labelledby="memory-title">
          <h2 id="memory-title">Worker memory</h2>
          <figure
            class="chart"
            aria-label="memory of each worker"
            dangerouslySetInnerHTML={{ __html: charts.memory }}
          />
        </section>

        <section aria-labelledby="ops-title" class="wide">
          <h2 id="ops-title">Operations</h2>
          <figure
            class="chart"
            aria-label="the steps of recent operations"
            dangerouslySetInnerHTML={{ __html: charts.operations }}
          />
          <ol class="operations">
            {operations.slice(0, 12).map((o) => (
              <li key={o.operation_id} data-operation={o.type} data-job={o.job_id}>
                <span class={`state ${o.status}`}>{o.status}</span> <strong>{o.type}</strong> {o.job_id} ·{' '}
                {ms(o.duration_ms)}
                {o.error ? <span class="error"> · {o.error.message}</span> : null}
              </li>
            ))}
          </ol>
        </section>

        <section aria-labelledby="logs-title" class="wide">
          <h2 id="logs-title">Worker log</h2>
          <LogTail job={logJob} jobs={list.map((s) => s.job_id)} onJob={setLogJob} />
        </section>
      </main>
    </>
  );
}

/**
 * Events come in bursts (creating, loading, ready within a second): run `refresh` once
 * the burst is over, and drop an answer when a newer refresh has started since, so a
 * slow early answer never overwrites a later one.
 */
function latestOnly(refresh: (isLatest: () => boolean) => Promise<void>, quietMs = 250): () => void {
  let generation = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const mine = ++generation;
      void refresh(() => mine === generation);
    }, quietMs);
  };
}

function catalogId(entry: unknown): string {
  if (typeof entry === 'string') return entry;
  const e = entry as { id?: string; model?: string; dataset?: string; name?: string };
  return e.id ?? e.model ?? e.dataset ?? e.name ?? JSON.stringify(entry);
}

function KeyPrompt({ reason, onKey }: { reason: string; onKey: (key: string) => void }) {
  const [key, setKey] = useState('');
  return (
    <main>
      <form
        class="key"
        onSubmit={(event) => {
          event.preventDefault();
          if (key.trim()) onKey(key.trim());
        }}
      >
        <h1>modeldock</h1>
        <p role="alert">{reason}</p>
        <p>The key is kept for this browser tab only (sessionStorage).</p>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          autoFocus
        />
        <button type="submit">Connect</button>
      </form>
    </main>
  );
}

function CreateForm({
  catalog,
  act,
}: {
  catalog: { models: string[]; datasets: string[] };
  act: (label: string, run: () => Promise<{ operation: Operation; result?: unknown }>) => Promise<void>;
}) {
  const [job, setJob] = useState('');
  const [model, setModel] = useState('');
  const [dataset, setDataset] = useState('');
  const chosenModel = model || catalog.models[0] || '';
  const chosenDataset = dataset || catalog.datasets[0] || '';
  const body = () => ({ job_id: job.trim(), model: chosenModel, dataset: chosenDataset });
  return (
    <form
      class="create"
      onSubmit={(event) => {
        event.preventDefault();
        void act(`create ${job}`, () => post('/v1/jobs', body()));
      }}
    >
      <label for="job-id">Job id</label>
      <input
        id="job-id"
        required
        pattern="[A-Za-z0-9][A-Za-z0-9._\-]*"
        value={job}
        onInput={(e) => setJob(e.currentTarget.value)}
      />
      <label for="model">Model</label>
      <select id="model" value={chosenModel} onChange={(e) => setModel(e.currentTarget.value)}>
        {catalog.models.map((m) => (
          <option key={m}>{m}</option>
        ))}
      </select>
      <label for="dataset">Dataset</label>
      <select id="dataset" value={chosenDataset} onChange={(e) => setDataset(e.currentTarget.value)}>
        {catalog.datasets.map((d) => (
          <option key={d}>{d}</option>
        ))}
      </select>
      <div class="buttons">
        <button type="submit">Create</button>
        <button
          type="button"
          onClick={(event) => {
            const form = (event.currentTarget as HTMLButtonElement).form!;
            if (form.reportValidity()) void act(`TEMP ${job}`, () => post('/v1/temp', body()));
          }}
        >
          Run TEMP
        </button>
      </div>
    </form>
  );
}

function LogTail({ job, jobs, onJob }: { job: string; jobs: string[]; onJob: (job: string) => void }) {
  const [text, setText] = useState('');
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    setText('');
    if (!job) return;
    const abort = new AbortController();
    streamText(`/v1/jobs/${encodeURIComponent(job)}/logs?tail=200&follow=true`, abort.signal, (chunk) =>
      // Keep the last 64 KiB: a log tail, not an archive.
      setText((t) => (t + chunk).slice(-65536)),
    ).catch((error: unknown) =>
      setText((t) => `${t}\n[${error instanceof Error ? error.message : String(error)}]`),
    );
    return () => abort.abort();
  }, [job]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  return (
    <>
      <label for="log-job">Job</label>{' '}
      <select id="log-job" value={job} onChange={(e) => onJob(e.currentTarget.value)}>
        <option value="">(choose a job)</option>
        {[...new Set([...jobs, ...(job ? [job] : [])])].map((j) => (
          <option key={j}>{j}</option>
        ))}
      </select>
      <pre ref={pre} class="log" tabIndex={0} aria-label="worker log" data-testid="log">
        {text}
      </pre>
    </>
  );
}

const root = document.getElementById('app')!;
root.textContent = ''; // the "Loading…" placeholder
render(<App />, root);
