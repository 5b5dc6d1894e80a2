/** The router's log: pretty (and coloured when wanted) on a terminal, JSON lines elsewhere. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { routerLogger } from '../../src/cli/router-logger.js';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as Writable & { isTTY?: boolean };
  stream.isTTY = isTTY;
  return { stream, text: () => chunks.join('') };
}

describe('router logger', () => {
  it('writes JSON lines when stdout is not a terminal (unchanged for machines)', () => {
    const out = sink(false);
    routerLogger('info', out.stream).info({ runtime: 'docker' }, 'router listening');
    const record = JSON.parse(out.text().trim());
    assert.equal(record.msg, 'router listening');
    assert.equal(record.service, 'modeldock-router');
    assert.equal(record.runtime, 'docker');
    assert.equal(record.level, 30);
  });

  it('pretty-prints on a terminal, coloured unless colour is turned off', () => {
    const coloured = sink(true);
    routerLogger('info', coloured.stream, true).info({ runtime: 'docker' }, 'router listening');
    assert.match(coloured.text(), /INFO/);
    assert.match(coloured.text(), /router listening/);
    // Without its colour codes, the record's fields are there as `key: value`.
    const ESC = String.fromCharCode(27);
    assert.match(coloured.text().replaceAll(new RegExp(`${ESC}\\[\\d+m`, 'g'), ''), /runtime: "docker"/);
    assert.ok(coloured.text().includes('\x1b['), 'ANSI colour');
    assert.throws(() => JSON.parse(coloured.text()), 'not JSON');

    const plain = sink(true);
    routerLogger('info', plain.stream, false).warn('no colour please');
    assert.match(plain.text(), /WARN.*no colour please/);
    assert.ok(!plain.text().includes('\x1b['), 'NO_COLOR: no escape codes');
  });
});
