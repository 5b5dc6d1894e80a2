/**
 * `Expect: 100-continue` (RFC 9110 §10.1.1), which curl sends by itself for bodies over
 * 1 MiB: the router answers it, as the proxy it is; it is never forwarded (workers'
 * HTTP client refuses it). A body that will not fit gets its 417/413 before the client
 * sends it; any other expectation is a 417.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { setSecurityHeaders } from './security-headers.js';

export function answerExpectations(
  server: Server,
  bodyLimitBytes: number,
  handle: (request: IncomingMessage, response: ServerResponse) => void,
): void {
  const refuse = (response: ServerResponse, status: number, code: string, message: string) => {
    // The body was never sent: the connection cannot carry another request reliably.
    setSecurityHeaders(response);
    response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
    response.end(JSON.stringify({ error: { code, message } }));
  };
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (Number(request.headers['content-length']) > bodyLimitBytes) {
      refuse(
        response,
        413,
        'payload_too_large',
        `request body too large (the limit is ${bodyLimitBytes} bytes)`,
      );
      return;
    }
    response.writeContinue();
    handle(request, response);
  });
  server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) =>
    refuse(response, 417, 'expectation_failed', 'only "Expect: 100-continue" is supported'),
  );
}
