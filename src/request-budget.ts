/**
 * A bound on the request bytes a process holds at once (issue #27), shared by the router
 * and the worker: every body a route buffers is charged as its bytes arrive — a declared
 * Content-Length up front, a chunked body chunk by chunk — at what it costs to hold (a
 * body parsed into a JSON tree costs a multiple of its size; one kept as bytes, its
 * size; one streamed on, nothing). A request that does not fit while others are in
 * flight is refused (TooManyRequestsError with a Retry-After), before its body is read
 * when its length is declared, at the chunk that passes the bound otherwise. A request
 * alone always fits, so one body at the body limit is never refused.
 *
 * Routes draw on separate budgets (the router: inference apart from administration and
 * health), so a flood of inference cannot starve an operator's call.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Transform, type TransformCallback } from 'node:stream';
import { TooManyRequestsError } from './errors.js';

/** How long a refused caller is told to wait (seconds). */
export const BUSY_RETRY_AFTER_SECONDS = 1;

export class ByteBudget {
  private used = 0;

  constructor(
    /** Named in refusals: `inference`, `administration`, `worker`. */
    readonly name: string,
    readonly limitBytes: number,
  ) {}

  get inFlightBytes(): number {
    return this.used;
  }

  /**
   * Charges `bytes` to a request already holding `held` of this budget, if they fit, or
   * if that request is the only one in flight.
   */
  tryTake(bytes: number, held = 0): boolean {
    if (this.used > held && this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used -= bytes;
  }

  busyError(): TooManyRequestsError {
    return new TooManyRequestsError(
      `busy: the ${this.name} requests in flight hold ${this.used} bytes of ${this.limitBytes}; send again shortly`,
      { retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS },
    );
  }
}

/** Which budget a request draws on, and what one byte of its body costs there (0: not charged). */
export interface BudgetChoice {
  budget: ByteBudget;
  costPerByte: number;
}

interface Charge extends BudgetChoice {
  bytes: number;
  declared: boolean;
  /** Refused: its body is read and dropped, and the refusal answered at its end. */
  refused: boolean;
}

/**
 * Installs the charging on a Fastify app: `onRequest` takes a declared length (after the
 * hooks installed before it, so the router's key check comes first), `preParsing`
 * meters a body without one; the charge is released when the response is closed.
 * `refused` is told of every refusal (a counter).
 */
export function installRequestBudget(
  app: FastifyInstance,
  choose: (request: FastifyRequest) => BudgetChoice | undefined,
  refused?: (budget: ByteBudget) => void,
): void {
  const charges = new WeakMap<FastifyRequest, Charge>();
  const busy = (budget: ByteBudget) => {
    refused?.(budget);
    return budget.busyError();
  };
  app.addHook('onRequest', (request, reply, done) => {
    const declared = Number(request.headers['content-length']);
    const hasLength = request.headers['content-length'] !== undefined && Number.isInteger(declared);
    // Neither a length nor chunks: no body to hold.
    if (!hasLength && request.headers['transfer-encoding'] === undefined) return done();
    const choice = choose(request);
    if (!choice || choice.costPerByte === 0) return done();
    const charge: Charge = { ...choice, bytes: 0, declared: hasLength, refused: false };
    if (charge.declared && declared > 0) {
      const bytes = declared * charge.costPerByte;
      // Not taken: refused, without holding a byte of it (see preParsing).
      if (!charge.budget.tryTake(bytes)) charge.refused = true;
      else charge.bytes = bytes;
    }
    charges.set(request, charge);
    // 'close' comes for a finished answer and an abandoned request alike.
    reply.raw.once('close', () => {
      charge.budget.release(charge.bytes);
      charge.bytes = 0;
    });
    done();
  });
  app.addHook('preParsing', (request, _reply, payload, done) => {
    const charge = charges.get(request);
    if (!charge || (charge.declared && !charge.refused)) return done(null, payload);
    // No declared length (chunked): charged as the bytes arrive. A refused body (its
    // declared length did not fit, or it passed the bound midway) is read on and dropped,
    // and refused at its end: a client still sending (a proxy such as the router, on a
    // kept-alive connection) then reads the refusal, where an answer in mid-upload breaks
    // its connection and looks like a failure. What is dropped is bounded too: past the
    // budget's size the refusal comes at once.
    let refused = charge.refused;
    let dropped = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
        if (refused) {
          dropped += chunk.length;
          return callback(dropped > charge.budget.limitBytes ? busy(charge.budget) : undefined);
        }
        const bytes = chunk.length * charge.costPerByte;
        if (!charge.budget.tryTake(bytes, charge.bytes)) {
          refused = true;
          dropped = chunk.length;
          return callback();
        }
        charge.bytes += bytes;
        callback(null, chunk);
      },
      flush(callback: TransformCallback) {
        callback(refused ? busy(charge.budget) : undefined);
      },
    });
    payload.on('error', (error) => meter.destroy(error));
    done(null, payload.pipe(meter));
  });
}
