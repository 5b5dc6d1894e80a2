/**
 * The web console: its static files at /ui (built by scripts/build-console.mjs into
 * dist/console, or beside the bundled router in its image) and its charts at
 * /v1/charts/*.svg. The files hold no data and load without a key (the page asks for
 * one when the API answers 401); the charts do hold data, so they live under /v1 with
 * the rest of the API and its authentication.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderSvg } from '../../charts/vega-svg.js';
import type { Store } from '../../store/store.js';
import { memorySpec, operationsSpec } from '../console-charts.js';
import { presentOperation } from '../presenters.js';
import type { WorkerStatsSampler } from '../worker-stats.js';
import { FRAME_ANCESTORS_NONE } from '../security-headers.js';

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** dist/console from src/ or dist/ (three levels below the checkout), or ./console beside a bundle. */
export function consoleDir(): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'console'), path.resolve(here, '../../../dist/console')];
  return candidates.find((dir) => existsSync(path.join(dir, 'index.html')));
}

export function consoleRoutes(): FastifyPluginAsyncTypebox {
  return async (app) => {
    const dir = consoleDir();
    app.get('/ui', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/'));
    app.get('/ui/', { schema: { hide: true } }, async (_request, reply) => serve('index.html', reply));
    app.get(
      '/ui/:file',
      { schema: { hide: true, params: Type.Object({ file: Type.String() }) } },
      async (request, reply) => serve(request.params.file, reply),
    );

    async function serve(file: string, reply: FastifyReply) {
      const type = FILES[file];
      if (!type)
        return reply.code(404).send({ error: { code: 'not_found', message: `no console file ${file}` } });
      if (!dir) {
        return reply.code(503).send({
          error: { code: 'unavailable', message: 'the console is not built: run `npm run build`' },
        });
      }
      return reply
        .type(type)
        .header('cache-control', 'no-cache')
        .header(
          'content-security-policy',
          `default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; ${FRAME_ANCESTORS_NONE}`,
        )
        .send(await readFile(path.join(dir, file)));
    }
  };
}

export function chartRoutes(deps: { store: Store; sampler: WorkerStatsSampler }): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['v1'];
    app.get(
      '/charts/operations.svg',
      {
        schema: {
          tags,
          summary: 'SVG chart of the steps of recent operations (the console’s timeline)',
          querystring: Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,2}$' })) }),
          produces: ['image/svg+xml'],
        },
      },
      async (request, reply) => {
        const limit = Math.min(Number(request.query.limit ?? 12), 50);
        const operations = (await deps.store.listOperations({ limit })).map(presentOperation);
        return reply.type('image/svg+xml').send(await renderSvg(operationsSpec(operations)));
      },
    );
    app.get(
      '/charts/memory.svg',
      {
        schema: { tags, summary: 'SVG chart of every running worker’s memory', produces: ['image/svg+xml'] },
      },
      async (_request, reply) =>
        reply.type('image/svg+xml').send(await renderSvg(memorySpec(await deps.sampler.sample()))),
    );
  };
}
