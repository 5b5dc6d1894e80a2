/**
 * What a gRPC call must pass before any of its message bytes are read, on the router and
 * on the worker alike (issue #27): a grpc-js server interceptor that decides on the
 * call's metadata alone.
 *
 * Why here and not in the handler: grpc-js decodes a unary call's whole message before
 * the handler runs, so a check in the handler lets a caller without a key make the
 * process hold up to the message limit per stream (64 streams × 16 MB took a router past
 * 1 GiB). In `onReceiveMetadata` the stream is still paused (grpc-js starts reading only
 * when the listener chain asks for the message), so a refused call costs one HTTP/2
 * flow-control window at most.
 *
 * Refusing is a status (UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED…) and a
 * reset of the stream (RST_STREAM NO_ERROR after the status, as RFC 9113 §8.1 allows), so
 * the client stops sending at once instead of the server reading and discarding the rest.
 *
 * Besides the key: at most `maxCallsPerPeer` calls at once from one remote address
 * (streams per connection are bounded by the server's `grpc.max_concurrent_streams`),
 * and a call's request message must have arrived `messageTimeoutMs` after its metadata,
 * else it is refused with DEADLINE_EXCEEDED and its partial message dropped.
 */
import * as grpc from '@grpc/grpc-js';
import { constants as http2Constants } from 'node:http2';
import { toGrpcStatus } from './grpc-status.js';

export interface CallGuardOptions {
  /** Throws a typed error (UnauthorizedError, ForbiddenError) to refuse the call; `path` is the RPC's. */
  admit: (metadata: grpc.Metadata, path: string) => void;
  /** Most calls in progress at once from one remote address. */
  maxCallsPerPeer: number;
  /** How long a call's request message may take to arrive after its metadata. */
  messageTimeoutMs: number;
  /** Told of every refusal (logging at debug, a counter): `reason` is the status's name. */
  onRefused?: (reason: 'unauthenticated' | 'forbidden' | 'busy' | 'slow', peer: string) => void;
}

/** The server options that bound what a connection may hold, for `new grpc.Server(...)`. */
export function boundedServerOptions(limits: {
  maxMessageBytes: number;
  maxStreamsPerConnection: number;
}): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': limits.maxMessageBytes,
    'grpc.max_send_message_length': limits.maxMessageBytes,
    // Node's HTTP/2 refuses new streams of a session past this; grpc-js's own default
    // is no bound at all.
    'grpc.max_concurrent_streams': limits.maxStreamsPerConnection,
    // Channelz (gRPC's introspection service, not served here) traces every call.
    'grpc.enable_channelz': 0,
  };
}

/** grpc-js's first call in the interceptor chain holds the HTTP/2 stream; nothing public resets it. */
interface WithStream {
  stream?: { close?: (code: number) => void; destroyed?: boolean };
}

const REASON: Partial<Record<grpc.status, 'unauthenticated' | 'forbidden'>> = {
  [grpc.status.UNAUTHENTICATED]: 'unauthenticated',
  [grpc.status.PERMISSION_DENIED]: 'forbidden',
};

export function callGuard(options: CallGuardOptions): grpc.ServerInterceptor {
  const callsByPeer = new Map<string, number>();
  return (method, call) => {
    const peer = call.getConnectionInfo().remoteAddress ?? 'unknown';
    let counted = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (!counted) return;
      counted = false;
      const left = (callsByPeer.get(peer) ?? 1) - 1;
      if (left > 0) callsByPeer.set(peer, left);
      else callsByPeer.delete(peer);
    };
    const refuse = (status: { code: grpc.status; details: string }, reason: 'busy' | 'slow' | undefined) => {
      settle();
      options.onRefused?.(reason ?? REASON[status.code] ?? 'forbidden', peer);
      call.sendStatus(status);
      // The status is queued before the reset, so the client reads it first. Without a
      // stream (a grpc-js that hides it), the rest of the message is read and dropped.
      const stream = (call as WithStream).stream;
      if (stream && !stream.destroyed) stream.close?.(http2Constants.NGHTTP2_NO_ERROR);
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, accept) => {
            try {
              options.admit(metadata, method.path);
            } catch (error) {
              refuse(toGrpcStatus(error), undefined);
              return;
            }
            const calls = callsByPeer.get(peer) ?? 0;
            if (calls >= options.maxCallsPerPeer) {
              refuse(
                {
                  code: grpc.status.RESOURCE_EXHAUSTED,
                  details: `too many calls at once from ${peer} (the limit is ${options.maxCallsPerPeer})`,
                },
                'busy',
              );
              return;
            }
            callsByPeer.set(peer, calls + 1);
            counted = true;
            timer = setTimeout(
              () =>
                refuse(
                  {
                    code: grpc.status.DEADLINE_EXCEEDED,
                    details: `the request message did not arrive within ${options.messageTimeoutMs} ms`,
                  },
                  'slow',
                ),
              options.messageTimeoutMs,
            );
            timer.unref();
            accept(metadata);
          },
          onReceiveMessage: (message, pass) => {
            // Arrived whole: what the call does with it is the handler's (and its deadline's).
            if (timer) clearTimeout(timer);
            timer = undefined;
            pass(message);
          },
          onCancel: settle,
        }),
      sendStatus: (status, send) => {
        settle();
        send(status);
      },
    });
  };
}

/** A metadata entry as text (undefined when absent). */
export function metadataText(metadata: grpc.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return value === undefined ? undefined : String(value);
}
