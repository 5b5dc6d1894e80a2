import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseNdjson } from '../../src/runtime/ndjson.js';

async function collect(chunks: (string | Buffer)[]) {
  const malformed: string[] = [];
  const out: unknown[] = [];
  async function* source() {
    for (const chunk of chunks) yield chunk;
  }
  for await (const value of parseNdjson(source(), (line) => malformed.push(line))) out.push(value);
  return { out, malformed };
}

describe('parseNdjson (the engine event stream)', () => {
  it('joins objects split across chunks, including inside a multi-byte character', async () => {
    const text = '{"a":1}\n{"name":"ünïcode"}\n{"b":2}\n';
    const bytes = Buffer.from(text);
    const cut = text.indexOf('ü') + 1; // inside the two bytes of ü
    const { out } = await collect([bytes.subarray(0, 3), bytes.subarray(3, cut), bytes.subarray(cut)]);
    assert.deepEqual(out, [{ a: 1 }, { name: 'ünïcode' }, { b: 2 }]);
  });

  it('parses several objects in one chunk and a last line without newline', async () => {
    const { out } = await collect(['{"a":1}\n\n{"b":2}\n{"c"', ':3}']);
    assert.deepEqual(out, [{ a: 1 }, { b: 2 }, { c: 3 }]);
  });

  it('reports a malformed line and goes on', async () => {
    const { out, malformed } = await collect(['{"a":1}\n{not json}\n{"b":2}\n']);
    assert.deepEqual(out, [{ a: 1 }, { b: 2 }]);
    assert.deepEqual(malformed, ['{not json}']);
  });
});
