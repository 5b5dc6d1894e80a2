// A node:test reporter that writes one JSON line per skipped or todo test, so that
// scripts/run-tests.mjs can fail the run on any: in CI a test that did not run is not a pass.
export default async function* skippedTests(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { skip, todo, name, file } = event.data;
    if (skip === undefined && todo === undefined) continue;
    const kind = skip !== undefined ? 'skip' : 'todo';
    const reason = typeof (skip ?? todo) === 'string' ? (skip ?? todo) : '';
    yield `${JSON.stringify({ kind, name, file, reason })}\n`;
  }
}
