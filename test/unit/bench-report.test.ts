/**
 * BENCHMARKS.md's tables and quoted figures are generated from bench/results/*.json
 * (bench/report.ts): the document in the repository must match its files, a hand edit
 * inside a generated part must not survive, and every table must say which run it quotes
 * (file, date, machine, commit, load).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { renderDocument } from '../../bench/lib/report.js';
import { machine } from '../../bench/lib/stats.js';
import { REPO_ROOT } from '../helpers/paths.js';

const RESULTS = path.join(REPO_ROOT, 'bench', 'results');
const DOCUMENT = readFileSync(path.join(REPO_ROOT, 'BENCHMARKS.md'), 'utf8');
const readResult = (file: string) => JSON.parse(readFileSync(path.join(RESULTS, file), 'utf8'));

/** A lifecycle result as the bench writes it now, with made-up figures. */
function lifecycleResult(floorCreate: number) {
  const spread = (median: number) => ({
    n: 9,
    median,
    p99: median,
    min: median,
    max: median,
    iqr: 1,
    q1: median,
    q3: median,
  });
  return {
    machine: {
      ...machine(),
      date: '2026-12-05T11:00:00.000Z',
      commit: { sha: '0123456789abcdef0123456789abcdef01234567', dirty: false },
      load_average: { at_start: [3.5, 2, 1], at_end: [4.25, 3, 2] },
    },
    operations: [
      {
        operation: 'DEPLOY_CREATE',
        floor: spread(floorCreate),
        modeldock: spread(500),
        ratio: 500 / floorCreate,
      },
    ],
  };
}

describe('BENCHMARKS.md', { timeout: 60_000 }, () => {
  it('matches the result files it quotes (npm run bench:report leaves it unchanged)', () => {
    const rendered = renderDocument(DOCUMENT, readResult);
    assert.deepEqual(rendered.problems, []);
    assert.ok(rendered.quoted.size >= 10, `only ${rendered.quoted.size} result files quoted`);
    assert.equal(
      rendered.text,
      DOCUMENT,
      'BENCHMARKS.md differs from bench/results/: run `npm run bench:report`',
    );
  });

  it('`npm run bench:report -- --check` passes on the repository', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/report.ts', '--check'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
  });

  it('replaces a hand edit inside a generated table with what the file holds', () => {
    const original = renderDocument(DOCUMENT, readResult).text;
    const row = /^\| DEPLOY_CREATE \| [^\n]*$/m.exec(original);
    assert.ok(row, 'no DEPLOY_CREATE row in BENCHMARKS.md');
    const edited = original.replace(row[0], '| DEPLOY_CREATE | 1 ms ± 0 ms | 1 ms ± 0 ms | 1.00× |');
    assert.notEqual(edited, original);
    assert.equal(renderDocument(edited, readResult).text, original);
  });
});

describe('bench:report', () => {
  const doc = [
    'The router adds <!-- figure: lifecycle.create_ratio -->9.99×<!-- /figure --> here.',
    '<!-- table: lifecycle.operations -->',
    'stale',
    '<!-- /table -->',
    '',
  ].join('\n');

  it('writes a table with the run it comes from: file, date, machine, commit and load', () => {
    const { text, problems, quoted } = renderDocument(doc, () => lifecycleResult(400));
    assert.deepEqual(problems, []);
    assert.deepEqual([...quoted], ['lifecycle.json']);
    assert.match(text, /adds <!-- figure: lifecycle.create_ratio -->1\.25×<!-- \/figure --> here/);
    assert.match(
      text,
      /\*bench\/results\/lifecycle\.json: run of 2026-12-05 11:00 UTC · \d+ vCPU .* · commit 0123456789 · load average 3\.5 → 4\.3 \(1 min, start → end\)\*/,
    );
    assert.match(text, /\| DEPLOY_CREATE \| 400 ms ± 1\.00 ms \| 500 ms ± 1\.00 ms \| 1\.25× \|/);
    assert.doesNotMatch(text, /stale/);
  });

  it("reads the file a marker names instead of the key's own", () => {
    const files: string[] = [];
    const { text } = renderDocument(
      doc.replace('lifecycle.operations -->', 'lifecycle.operations from history/old.json -->'),
      (file) => {
        files.push(file);
        return lifecycleResult(file === 'history/old.json' ? 250 : 400);
      },
    );
    assert.deepEqual(files.sort(), ['history/old.json', 'lifecycle.json']);
    assert.match(text, /\*bench\/results\/history\/old\.json: run of/);
    assert.match(text, /\| DEPLOY_CREATE \| 250 ms/);
  });

  it('says so when a result predates the commit and load records', () => {
    const old = lifecycleResult(400) as any;
    delete old.machine.commit;
    delete old.machine.load_average;
    const { text } = renderDocument(doc, () => old);
    assert.match(text, /commit not recorded · load not recorded/);
  });

  it('reports an unknown key, a missing file and a result of another shape, and keeps the old text', () => {
    const bad = [
      '<!-- table: lifecycle.nothing -->\nold 1\n<!-- /table -->',
      '<!-- table: routing.http -->\nold 2\n<!-- /table -->',
      '<!-- figure: lifecycle.create_ratio from gone.json -->old 3<!-- /figure -->',
    ].join('\n');
    const { text, problems } = renderDocument(bad, (file) => {
      if (file === 'gone.json') throw new Error('ENOENT: no such file');
      return { machine: {}, latency_c1: {} };
    });
    assert.equal(text, bad);
    assert.equal(problems.length, 3);
    assert.match(problems[0]!, /table lifecycle\.nothing: no such table/);
    assert.match(
      problems[1]!,
      /table routing\.http from routing\.json: the result has no cpu_us_per_request\.direct/,
    );
    assert.match(problems[2]!, /figure lifecycle\.create_ratio from gone\.json: ENOENT/);
  });
});
