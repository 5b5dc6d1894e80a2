#!/usr/bin/env node
// Builds the web console (console/) into dist/console/ with esbuild: one minified ES
// module with Preact and the SSE parser bundled in (no CDN: the router serves it
// offline), the stylesheet and the page. `npm run build` runs it after tsc; the router
// image's build runs it too (src/runtime/docker/image-builder.ts).
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function buildConsole(outdir = path.join(root, 'dist', 'console')) {
  await mkdir(outdir, { recursive: true });
  await build({
    entryPoints: [path.join(root, 'console', 'main.tsx')],
    outfile: path.join(outdir, 'app.js'),
    bundle: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    absWorkingDir: root,
  });
  for (const file of ['index.html', 'app.css'])
    await copyFile(path.join(root, 'console', file), path.join(outdir, file));
  return outdir;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = await buildConsole(process.argv[2]);
  console.log(`console built in ${path.relative(process.cwd(), outdir) || '.'}`);
}
