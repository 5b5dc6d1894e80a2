/**
 * `POST /v2/models/<job>/infer` for a job whose server does not accept the binary tensor
 * extension (its serving runtime's `binaryTensors` is false, e.g. MLServer): the body is
 * read whole, translated to JSON tensors (json-tensors.ts), sent, and the JSON answer is
 * translated back to the binary form when the client asked for binary outputs. So
 * Triton's clients, which send binary tensors by default, work unchanged whatever server
 * holds the model. Every other infer request is proxied untouched (v2.ts, the hot path).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { gunzipSync, inflateSync } from 'node:zlib';
import { InvalidInputError, PayloadTooLargeError, WorkerError, errorMessage } from '../errors.js';
import {
  binaryRequestToJson,
  jsonAnswerToBinary,
  type JsonInferAnswer,
} from '../inference-grpc/json-tensors.js';
import type { Lifecycle, RouteEntry } from '../lifecycle/lifecycle.js';
import type { Metrics } from '../observability/metrics.js';
import { WORKER_ANSWER_TIMEOUT_MS, type WorkerClient } from '../runtime/worker-client.js';
import { bodyTooLarge } from './body-limit.js';
import { toProtocolErrorResponse } from './error-mapping.js';
import { endToEndHeaders } from '../end-to-end-headers.js';
import { answerError, answerWorkerFailure } from './worker-proxy.js';

export interface JsonTensorProxyDeps {
  lifecycle: Pick<Lifecycle, 'workerDidNotAnswer' | 'healLostModel'>;
  workers: Pick<WorkerClient, 'pool'>;
  metrics: Pick<Metrics, 'observeInference'>;
  bodyLimitBytes: number;
}

/** Headers that describe the client's body or its encoding: the translated request has its own. */
const BODY_HEADERS = [
  'content-length',
  'content-type',
  'content-encoding',
  'inference-header-content-length',
  'accept-encoding',
];

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A compressed body (tritonclient's request_compression_algorithm) inflated, within the body limit. */
function decoded(body: Buffer, encoding: string | undefined, limit: number): Buffer {
  const name = encoding?.trim().toLowerCase();
  if (name === undefined || name === '' || name === 'identity') return body;
  const options = { maxOutputLength: limit };
  try {
    if (name === 'gzip') return gunzipSync(body, options);
    if (name === 'deflate') return inflateSync(body, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new PayloadTooLargeError(
        `request body too large once decompressed (the limit is ${limit} bytes)`,
      );
    }
    throw new InvalidInputError(`the body is not valid ${name} data: ${errorMessage(error)}`);
  }
  throw new InvalidInputError(`Content-Encoding ${name} is not supported: send gzip, deflate or none`);
}

export async function inferThroughJson(
  deps: JsonTensorProxyDeps,
  route: RouteEntry,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const started = performance.now();
  let translated: ReturnType<typeof binaryRequestToJson>;
  let body: string;
  try {
    const raw = await readAll(request.body as Readable).catch((error: unknown) => {
      throw bodyTooLarge(error) ?? error;
    });
    const headerLength = request.headers['inference-header-content-length'];
    translated = binaryRequestToJson(
      decoded(raw, request.headers['content-encoding'], deps.bodyLimitBytes),
      headerLength === undefined ? undefined : Number(headerLength),
    );
    body = JSON.stringify(translated.json);
  } catch (error) {
    // Refused before anything was sent (Fastify answers it): the route is let go here.
    route.release();
    throw error;
  }
  const headers = endToEndHeaders(request.headers);
  for (const name of BODY_HEADERS) delete headers[name];
  headers['content-type'] = 'application/json';
  const send = (target: RouteEntry) =>
    deps.workers.pool(target.endpoint).request({
      method: 'POST',
      path: `${target.modelPath}/infer`,
      headers,
      body,
      headersTimeout: WORKER_ANSWER_TIMEOUT_MS,
      bodyTimeout: WORKER_ANSWER_TIMEOUT_MS,
    });
  const response = reply.raw;
  reply.hijack();
  // The route taken for this request, then the healed one it is sent again on; released once.
  let held = route;
  let answer: { statusCode: number; contentType: string | undefined; bytes: Buffer };
  try {
    let sent = await send(held);
    if (sent.statusCode === 404) {
      // The server lost the model the router holds as ready: healed, then sent once more.
      await sent.body.dump();
      let fresh: RouteEntry;
      try {
        fresh = await deps.lifecycle.healLostModel(held);
      } catch (error) {
        return answerError(deps, held.jobId, response, error, started);
      }
      held.release();
      held = fresh;
      sent = await send(held);
    }
    answer = {
      statusCode: sent.statusCode,
      contentType: sent.headers['content-type'] as string | undefined,
      bytes: Buffer.from(await sent.body.arrayBuffer()),
    };
  } catch (error) {
    if (request.raw.socket?.destroyed) return;
    return answerWorkerFailure(deps, held, response, error, started);
  } finally {
    held.release();
  }
  if (answer.statusCode !== 200 || !translated.anyBinaryOutput) {
    return finish(deps, held, response, started, answer.statusCode, {
      headers: { 'content-type': answer.contentType ?? 'application/json' },
      bytes: answer.bytes,
    });
  }
  let binary: { body: Buffer; headerLength: number };
  try {
    binary = jsonAnswerToBinary(
      JSON.parse(answer.bytes.toString('utf8')) as JsonInferAnswer,
      translated.binaryOutput,
    );
  } catch (error) {
    const { status, body: message } = toProtocolErrorResponse(
      new WorkerError(
        `the server of job ${held.jobId} answered what cannot be translated: ${errorMessage(error)}`,
      ),
    );
    return finish(deps, held, response, started, status, {
      headers: { 'content-type': 'application/json; charset=utf-8' },
      bytes: Buffer.from(JSON.stringify(message)),
    });
  }
  return finish(deps, held, response, started, 200, {
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(binary.headerLength),
    },
    bytes: binary.body,
  });
}

function finish(
  deps: JsonTensorProxyDeps,
  route: RouteEntry,
  response: FastifyReply['raw'],
  started: number,
  status: number,
  answer: { headers: Record<string, string>; bytes: Buffer },
): void {
  deps.metrics.observeInference(route.jobId, status, (performance.now() - started) / 1000);
  response.writeHead(status, { ...answer.headers, 'content-length': String(answer.bytes.byteLength) });
  response.end(answer.bytes);
}
