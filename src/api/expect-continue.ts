/**
 * `Expect: 100-continue` (RFC 9110 §10.1.1), which curl sends by itself for bodies over
 * 1 MiB: the router answers it, as the proxy it is; it is never forwarded (workers'
 * HTTP client refuses it). A body that will not fit gets its 413, and a request
 * without a valid key its 401, before the client sends the body (so a stranger's upload
 * is never read and thrown away); any other expectation is a 417. A valid key of the
 * wrong scope is told 403 by the route, as without the expectation.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { WWW_AUTHENTICATE } from './auth-hook.js';
import { setSecurityHeaders } from './security-headers.js';

export function answerExpectations(
  server: Server,
  bodyLimitBytes: number,
  handle: (request: IncomingMessage, response: ServerResponse) => void,
  /** Why the request's `Authorization` opens nothing here (401), or undefined when it is a valid key. */
  unauthenticated: (authorization: string | undefined) => string | undefined,
): void {
  const refuse = (
    response: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ) => {
    // The body was never sent: the connection cannot carry another request reliably.
    setSecurityHeaders(response);
    response.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      connection: 'close',
      ...headers,
    });
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
    const unknownKey = unauthenticated(request.headers.authorization);
    if (unknownKey !== undefined) {
      refuse(response, 401, 'unauthorized', unknownKey, { 'www-authenticate': WWW_AUTHENTICATE });
      return;
    }
    response.writeContinue();
    handle(request, response);
  });
  server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) =>
    refuse(response, 417, 'expectation_failed', 'only "Expect: 100-continue" is supported'),
  );
}
