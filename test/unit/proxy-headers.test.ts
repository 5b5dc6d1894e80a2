/**
 * Which request and response headers pass a proxy hop (RFC 9110 §7.6.1): hop-by-hop
 * fields, the fields a Connection header names, Expect (the router answers
 * `100 Continue` itself) and the client's proxy credentials stay behind.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endToEndHeaders } from '../../src/end-to-end-headers.js';

describe('endToEndHeaders', () => {
  it('drops the hop-by-hop fields, Expect and Proxy-Authorization', () => {
    const out = endToEndHeaders({
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      te: 'trailers',
      trailer: 'x-checksum',
      upgrade: 'h2c',
      'proxy-connection': 'keep-alive',
      'proxy-authorization': 'Basic dXNlcjpwYXNz',
      'proxy-authenticate': 'Basic',
      host: 'router:8080',
      expect: '100-continue',
      'content-type': 'application/json',
      'content-length': '12',
      'inference-header-content-length': '10',
    });
    assert.deepEqual(out, {
      'content-type': 'application/json',
      'content-length': '12',
      'inference-header-content-length': '10',
    });
  });

  it('drops every field the Connection header names, whatever their case and spacing', () => {
    const out = endToEndHeaders({
      connection: 'close, X-Internal-Token ,x-trace-hop',
      'x-internal-token': 'secret',
      'x-trace-hop': '1',
      'x-kept': 'yes',
    });
    assert.deepEqual(out, { 'x-kept': 'yes' });
  });

  it("never forwards a client's own worker-secret header", () => {
    const out = endToEndHeaders({ 'x-modeldock-worker-secret': 'guess', accept: '*/*' });
    assert.deepEqual(out, { accept: '*/*' });
  });
});
