/**
 * The router's model and dataset stores, served to its own workers (worker-store-protocol.ts)
 * so that a worker on any node gets its files without a shared file system
 * (MODELDOCK_K8S_STORE=router, docs/runtime-kubernetes.md).
 *
 * Not an API route: no API key opens it, and no API key is needed. A caller must present
 * the secret of a worker this router runs (worker-callers.ts), else 401 — before anything
 * about the store is revealed, so a stranger cannot tell a missing file from a present one.
 * Only the store files of an id are served (STORE_FILES), from real paths inside the
 * store's root (a link out of it is refused, as the worker's own reads refuse it), with
 * their SHA-256 as a strong ETag and a Repr-Digest, streamed from disk; a conditional
 * request for an unchanged file is answered 304 without reading it.
 *
 * A model's whole directory is served the same way to a foreign server's guard, which
 * fetches it into its Pod's repository (model-dir.ts: confined to the model's own
 * directory, its listing bounded).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import path from 'node:path';
import { NotFoundError, UnauthorizedError } from '../../errors.js';
import { validateId } from '../../ids.js';
import type { Catalog } from '../../lifecycle/catalog.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Runtime } from '../../runtime/runtime.js';
import { WORKER_SECRET_HEADER } from '../../worker-secret.js';
import {
  STORE_DIRS,
  STORE_FILES,
  MODEL_DIRS,
  WORKER_STORE_PREFIX,
  etagOf,
  ifNoneMatchHolds,
  modelDirRelativePath,
  reprDigestOf,
  type StoreKind,
} from '../../worker-store-protocol.js';
import { listModelDir, modelDirOf } from '../model-dir.js';
import { StoreFiles } from '../store-file.js';
import { WorkerCallers } from '../worker-callers.js';

export function workerStoreRoutes(deps: {
  catalog: Catalog;
  runtime: Runtime;
  metrics: Metrics;
}): FastifyPluginAsync {
  const callers = new WorkerCallers(deps.runtime);
  const files = new StoreFiles();
  const kinds = new Map<string, StoreKind>(
    Object.entries(STORE_DIRS).map(([kind, dir]) => [dir, kind as StoreKind]),
  );

  const requireWorker = async (request: FastifyRequest, kind: string, file: string): Promise<string> => {
    const worker = await callers.identify(request.headers[WORKER_SECRET_HEADER]);
    if (worker !== undefined) return worker;
    deps.metrics.workerStoreFiles.inc({ kind, file, status: '401' });
    throw new UnauthorizedError(
      `the store is served to this router's workers only: missing or unknown ${WORKER_SECRET_HEADER} header`,
    );
  };

  /**
   * One store file, streamed, with its digest; 304 for a conditional request naming it.
   * `file` is its label in the metrics (a bounded set of names).
   */
  const sendFile = async (
    request: FastifyRequest,
    reply: FastifyReply,
    worker: string,
    target: { kind: StoreKind; root: string; relative: string; what: string; file: string },
  ) => {
    const { kind, file } = target;
    let opened;
    try {
      opened = await files.open(target.root, target.relative, kind, target.what);
    } catch (error) {
      if (error instanceof NotFoundError) deps.metrics.workerStoreFiles.inc({ kind, file, status: '404' });
      throw error;
    }
    const etag = etagOf(opened.sha256);
    void reply.header('etag', etag).header('repr-digest', reprDigestOf(opened.sha256));
    // A worker's copy is checked by its digest on every use, never kept on trust.
    void reply.header('cache-control', 'private, no-cache');
    if (ifNoneMatchHolds(request.headers['if-none-match'], etag)) {
      await opened.close();
      deps.metrics.workerStoreFiles.inc({ kind, file, status: '304' });
      return reply.code(304).send();
    }
    deps.metrics.workerStoreFiles.inc({ kind, file, status: '200' });
    request.log.info({ worker, file: target.what, bytes: opened.size }, 'store file sent to a worker');
    return reply.type('application/octet-stream').header('content-length', opened.size).send(opened.stream());
  };

  return async (app) => {
    app.get(`${WORKER_STORE_PREFIX}/models`, { schema: { hide: true } }, async (request) => {
      await requireWorker(request, 'model', 'list');
      return deps.catalog.listModels();
    });

    app.get<{ Params: { id: string } }>(
      `${WORKER_STORE_PREFIX}/${MODEL_DIRS}/:id`,
      { schema: { hide: true } },
      async (request) => {
        await requireWorker(request, 'model', 'dir-listing');
        try {
          const listing = await listModelDir(deps.catalog.modelsDir, request.params.id, files);
          deps.metrics.workerStoreFiles.inc({ kind: 'model', file: 'dir-listing', status: '200' });
          return listing;
        } catch (error) {
          if (error instanceof NotFoundError)
            deps.metrics.workerStoreFiles.inc({ kind: 'model', file: 'dir-listing', status: '404' });
          throw error;
        }
      },
    );

    app.get<{ Params: { id: string; '*': string } }>(
      `${WORKER_STORE_PREFIX}/${MODEL_DIRS}/:id/*`,
      { schema: { hide: true } },
      async (request, reply) => {
        const worker = await requireWorker(request, 'model', 'dir-file');
        const { id } = request.params;
        const relative = modelDirRelativePath(request.params['*']);
        // Confined to the model's own directory, not merely to the store.
        const root = await modelDirOf(deps.catalog.modelsDir, id);
        return sendFile(request, reply, worker, {
          kind: 'model',
          root,
          relative,
          what: `model "${id}" ${relative}`,
          file: 'dir-file',
        });
      },
    );

    app.get<{ Params: { dir: string; id: string; file: string } }>(
      `${WORKER_STORE_PREFIX}/:dir/:id/:file`,
      { schema: { hide: true } },
      async (request, reply) => {
        const { dir, id, file } = request.params;
        const kind = kinds.get(dir);
        const known = kind !== undefined && STORE_FILES[kind].includes(file);
        const worker = await requireWorker(request, kind ?? 'none', known ? file : 'other');
        if (!known) throw new NotFoundError(`no store file ${dir}/…/${file.slice(0, 40)}`);
        validateId(kind, id);
        const root = kind === 'model' ? deps.catalog.modelsDir : deps.catalog.datasetsDir;
        return sendFile(request, reply, worker, {
          kind,
          root,
          relative: path.join(id, file),
          what: `${kind} "${id}" ${file}`,
          file,
        });
      },
    );
  };
}
