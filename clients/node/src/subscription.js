// An event subscription on the broker's events endpoint (PROTOCOL.md 5.11,
// 8.7): SUBSCRIBE, liveness, re-subscription after a broker restart, and
// the count of events missed, from gaps in `sn`.

import { randomBytes } from 'node:crypto';

import { decode as decodeValue } from '@msgpack/msgpack';

import { BrokerUnreachableError, CancelledError, InvalidError, RejectedError, WireError } from './errors.js';
import { Link, quote } from './link.js';
import { MAX_EVENT_PAYLOAD, encodeBody } from './wire.js';

const TICK_MS = 100;
const DECODE_LIMITS = {
  maxStrLength: MAX_EVENT_PAYLOAD,
  maxBinLength: MAX_EVENT_PAYLOAD,
  maxArrayLength: 4096,
  maxMapLength: 4096,
  maxExtLength: MAX_EVENT_PAYLOAD,
};

/**
 * Events delivered to one subscriber. Iterate it with `for await`; leaving
 * the loop closes it. Created by `Client.subscribe`.
 */
export class Subscription {
  #link;
  #logger;
  #subscribeBody;
  #maxQueued;
  #startTimeoutMs;
  #queue = [];
  #waiters = [];
  #lastSn = 0;
  #missed = 0;
  #failure = null;
  #starting = null;
  #ticker = null;
  #isClosed = false;
  #markClosed;

  /** Settles once the subscription is closed. */
  closed = new Promise((resolve) => {
    this.#markClosed = resolve;
  });

  /**
   * @param {object} options
   * @param {string} options.endpoint the broker's events endpoint
   * @param {string[]} options.prefixes type prefixes; empty: every event
   * @param {{warn: (message: string) => void}} options.logger
   * @param {number} [options.maxQueued] events held for a slow consumer;
   *   beyond it they are dropped and counted in `missed`
   * @param {number} [options.startTimeoutMs] how long `start` waits for the broker
   */
  constructor({ endpoint, prefixes, logger, maxQueued = 10_000, startTimeoutMs = 5000 }) {
    this.#subscribeBody = encodeBody('C', 'SUBSCRIBE', { types: prefixes });
    this.#logger = logger;
    this.#maxQueued = maxQueued;
    this.#startTimeoutMs = startTimeoutMs;
    this.#link = new Link({
      endpoint,
      role: 'C',
      routingId: randomBytes(16).toString('hex'),
      logger,
      onMessage: (message) => this.#onMessage(message),
      onSendFailure: (err) => this.#reconnect(`send failed: ${err.message}`),
    });
  }

  /**
   * Events missed so far: gaps in the broker's delivery numbers (events it
   * dropped for this subscriber), numbering restarted by a broker that forgot
   * this subscriber, and events dropped because the consumer fell behind.
   */
  get missed() {
    return this.#missed;
  }

  /** Sends SUBSCRIBE and resolves once the broker acknowledged it. */
  start() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.#settleStart(new BrokerUnreachableError('no answer to SUBSCRIBE from the broker')),
        this.#startTimeoutMs,
      );
      this.#starting = { resolve, reject, timer };
      this.#link.open();
      this.#link.send('SUBSCRIBE', [this.#subscribeBody]);
      this.#ticker = setInterval(() => this.#tick(), TICK_MS).unref();
    });
  }

  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        if (this.#queue.length > 0) {
          yield this.#queue.shift();
        } else if (this.#failure) {
          throw this.#failure;
        } else if (this.#isClosed) {
          return;
        } else {
          await new Promise((resolve) => this.#waiters.push(resolve));
        }
      }
    } finally {
      await this.close();
    }
  }

  /** Leaves: DISCONNECT to the broker, then the iteration ends. */
  async close() {
    if (this.#isClosed) return;
    this.#isClosed = true;
    clearInterval(this.#ticker);
    this.#settleStart(new CancelledError('subscription closed'));
    await this.#link.send('DISCONNECT');
    this.#link.close(100);
    this.#wake();
    this.#markClosed();
  }

  #wake() {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  #settleStart(error) {
    const starting = this.#starting;
    if (!starting) return;
    this.#starting = null;
    clearTimeout(starting.timer);
    if (!error) {
      starting.resolve();
      return;
    }
    starting.reject(error);
    this.close();
  }

  /** Ends the iteration with `error` once the events already queued are consumed. */
  #fail(error) {
    this.#failure = error;
    this.close();
  }

  #tick() {
    this.#link.keepAlive(0, (reason) => this.#reconnect(reason));
  }

  /** A new socket (same identity), then SUBSCRIBE again (5.11 liveness). */
  #reconnect(reason) {
    if (this.#isClosed) return;
    this.#logger.warn(`yard: subscribing again: ${reason}`);
    this.#link.open();
    this.#link.send('SUBSCRIBE', [this.#subscribeBody]);
  }

  #onMessage({ command, bodies }) {
    switch (command) {
      case 'HEARTBEAT':
        this.#settleStart(); // the first one acknowledges SUBSCRIBE
        break;
      case 'PUBLISH':
        for (const body of bodies) this.#onEvent(body);
        this.#wake();
        break;
      case 'DISCONNECT':
        // The broker does not know this subscriber (it restarted).
        this.#link.send('SUBSCRIBE', [this.#subscribeBody]);
        break;
      case 'ERROR':
        this.#onError(bodies[0]);
        break;
      default:
        this.#logger.warn(`yard: discarded ${command} on the events endpoint`);
    }
  }

  #onError(body) {
    if (body instanceof WireError) {
      this.#logger.warn(`yard: discarded a bad ERROR body: ${quote(body.message)}`);
      return;
    }
    const text = `${body.code}: ${body.message}`;
    const error = body.code === 'limit' ? new RejectedError(text) : new InvalidError(text);
    if (this.#starting) this.#settleStart(error);
    else if (body.code === 'limit') this.#fail(error); // a re-subscription was refused
    else this.#logger.warn(`yard: the broker refused a message: ${quote(text)}`);
  }

  #onEvent(body) {
    if (body instanceof WireError) {
      this.#logger.warn(`yard: discarded a bad event: ${quote(body.message)}`);
      return;
    }
    const sn = Number(body.sn);
    // sn grows by one per event meant for this subscriber; it starts again
    // at 1 when the broker did not know the subscriber (5.11).
    this.#missed += sn > this.#lastSn ? sn - this.#lastSn - 1 : sn - 1;
    this.#lastSn = sn;
    if (this.#queue.length >= this.#maxQueued) {
      this.#missed += 1;
      return;
    }
    this.#queue.push({
      type: body.type,
      source: body.source ?? '',
      tsUs: Number(body.ts_us ?? 0),
      payload: this.#decodePayload(body),
      rawPayload: body.payload,
      traceId: body.trace_id ?? '',
      meta: Object.fromEntries(body.meta ?? []),
      sn,
    });
  }

  #decodePayload({ type, payload }) {
    if (payload === undefined) return undefined;
    try {
      return decodeValue(payload, DECODE_LIMITS);
    } catch (err) {
      this.#logger.warn(`yard: the payload of a ${type} event cannot be read as JavaScript: ${err.message}`);
      return undefined;
    }
  }
}
