/**
 * Headers every answer of the router carries, whatever path answered it (the inference
 * hot path, a Fastify route, an expectation refused before either).
 *
 * Why on every answer and not only the console's pages: a page elsewhere that frames any
 * of the router's pages could lead an operator, whose browser holds a key for the
 * console, into clicking something there (clickjacking: a terminate button under a
 * decoy). `frame-ancestors 'none'` is the current way to forbid framing, X-Frame-Options
 * the one older browsers read; `nosniff` keeps a browser from running a JSON or text
 * answer as a script or style it guesses it to be. The console's own, stricter policy
 * (routes/console.ts) replaces the CSP here and keeps `frame-ancestors 'none'`.
 */
import type { ServerResponse } from 'node:http';

export const FRAME_ANCESTORS_NONE = "frame-ancestors 'none'";

export function setSecurityHeaders(response: ServerResponse): void {
  response.setHeader('content-security-policy', FRAME_ANCESTORS_NONE);
  response.setHeader('x-frame-options', 'DENY');
  response.setHeader('x-content-type-options', 'nosniff');
}
