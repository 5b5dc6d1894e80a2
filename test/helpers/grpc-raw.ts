/**
 * gRPC calls as an attacker sends them: raw HTTP/2 streams that announce a large message
 * and never finish it, to see what a server holds and when it refuses (issue #27).
 */
import http2 from 'node:http2';

export const MODEL_INFER_PATH = '/inference.GRPCInferenceService/ModelInfer';

export interface UnfinishedCall {
  /** grpc-status of the answer (headers or trailers); undefined if none came. */
  status: number | undefined;
  /** Message bytes the client managed to write before the stream ended. */
  sent: number;
  /** The stream ended (answered and closed, or reset) before the message was complete. */
  refusedEarly: boolean;
}

/**
 * One call announcing `announced` message bytes and sending all but the last; resolves
 * when the stream closes or after `holdMs` (the stream is then cancelled by the caller
 * closing the session).
 */
export function unfinishedCall(
  session: http2.ClientHttp2Session,
  metadata: Record<string, string>,
  announced: number,
  holdMs: number,
): Promise<UnfinishedCall> {
  return new Promise((resolve) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': MODEL_INFER_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...metadata,
    });
    let status: number | undefined;
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ status, sent, refusedEarly: stream.closed && sent < announced });
    };
    const timer = setTimeout(finish, holdMs);
    const statusOf = (headers: http2.IncomingHttpHeaders) => {
      const value = headers['grpc-status'];
      if (value !== undefined) status = Number(value);
    };
    stream.on('response', statusOf);
    stream.on('trailers', statusOf);
    stream.on('error', () => undefined);
    stream.on('close', finish);
    stream.resume();
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(announced, 1);
    stream.write(prefix);
    const chunk = Buffer.alloc(256 * 1024);
    const pump = () => {
      while (!stream.closed && sent < announced - 1) {
        const piece = chunk.subarray(0, Math.min(chunk.length, announced - 1 - sent));
        sent += piece.length;
        if (!stream.write(piece)) return void stream.once('drain', pump);
      }
    };
    pump();
  });
}

export function connect(port: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}
