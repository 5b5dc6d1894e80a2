/**
 * Fills BENCHMARKS.md's generated parts from the result files (bench/report.ts runs it):
 *
 *   <!-- table: lifecycle.operations -->            a table, with where and when it was measured
 *   …generated…
 *   <!-- /table -->
 *   <!-- figure: lifecycle.create_ratio -->…<!-- /figure -->   one figure inside a sentence
 *
 * A marker may name another file under bench/results/ than its key's own
 * (`<!-- table: lifecycle.operations from history/lifecycle-2026-11-25.json -->`).
 * Whatever stands between a marker and its end is replaced, so a hand edit there does not
 * survive, and `--check` (CI, test/unit/bench-report.test.ts) fails while the document
 * differs from its files.
 */
import { FIGURES, TABLES, provenance, type Renderer } from './report-tables.js';

export interface RenderedDocument {
  text: string;
  /** Result files the document quotes (relative to bench/results/). */
  quoted: Set<string>;
  /** Markers that could not be rendered: unknown key, missing file, result of another shape. */
  problems: string[];
}

const BLOCK = /(<!-- table: ([\w.-]+)(?: from ([\w./-]+))? -->\n)([\s\S]*?)(<!-- \/table -->)/g;
const INLINE = /(<!-- figure: ([\w.-]+)(?: from ([\w./-]+))? -->)([\s\S]*?)(<!-- \/figure -->)/g;

/** The result file a key renders from by default: `lifecycle.operations` → lifecycle.json. */
export const defaultFile = (key: string) => `${key.slice(0, key.indexOf('.'))}.json`;

export function renderDocument(text: string, readResult: (file: string) => unknown): RenderedDocument {
  const quoted = new Set<string>();
  const problems: string[] = [];
  const render = (
    kind: 'table' | 'figure',
    renderers: Record<string, Renderer>,
    key: string,
    from: string | undefined,
    previous: string,
    wrap: (file: string, result: unknown, rendered: string) => string,
  ) => {
    const file = from ?? defaultFile(key);
    const renderer = renderers[key];
    if (!renderer) {
      problems.push(`${kind} ${key}: no such ${kind} in bench/lib/report-tables.ts`);
      return previous;
    }
    try {
      const result = readResult(file);
      quoted.add(file);
      return wrap(file, result, renderer(result));
    } catch (error) {
      problems.push(`${kind} ${key} from ${file}: ${error instanceof Error ? error.message : String(error)}`);
      return previous;
    }
  };
  const withTables = text.replace(
    BLOCK,
    (_m, open: string, key: string, from: string | undefined, body: string, close: string) =>
      open +
      render(
        'table',
        TABLES,
        key,
        from,
        body,
        (file, result, rendered) => `${provenance(`bench/results/${file}`, result)}\n\n${rendered}\n`,
      ) +
      close,
  );
  const withFigures = withTables.replace(
    INLINE,
    (_m, open: string, key: string, from: string | undefined, body: string, close: string) =>
      open + render('figure', FIGURES, key, from, body, (_file, _result, rendered) => rendered) + close,
  );
  return { text: withFigures, quoted, problems };
}
