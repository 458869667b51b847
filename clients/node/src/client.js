// The client (PROTOCOL.md 8.3): submits tasks and waits for their results,
// heartbeats while tasks are outstanding, reconnects and resends on silence
// or DISCONNECT, gives up locally after the deadline; publishes events and
// opens event subscriptions.

import { randomBytes } from 'node:crypto';

import { encode as encodeValue } from '@msgpack/msgpack';

import {
  BrokerUnreachableError,
  CancelledError,
  CircuitOpenError,
  InvalidError,
  RejectedError,
  ShutdownError,
  TaskError,
  TimeoutError,
  WireError,
} from './errors.js';
import { Link, now, quote } from './link.js';
import { Writer } from './msgpack.js';
import { Subscription } from './subscription.js';
import {
  DEFAULT_BROKER,
  DEFAULT_EVENTS,
  DEFAULT_TIMEOUT_MS,
  GIVE_UP_SLACK_MS,
  encodeBody,
} from './wire.js';

const TICK_MS = 100;
const EMPTY = Buffer.alloc(0);

const ERRORS = {
  error: TaskError,
  timeout: TimeoutError,
  rejected: RejectedError,
  circuit_open: CircuitOpenError,
  cancelled: CancelledError,
  shutdown: ShutdownError,
  invalid: InvalidError,
};

/** The outcome of a task: the broker's RESULT (5.3). */
export class Result {
  constructor(body) {
    /** The task id. */
    this.id = body.id;
    /** The wire status; always "ok" for a Result a promise resolves with. */
    this.status = body.status;
    /** The final attempt's payload. */
    this.payload = body.payload ?? EMPTY;
    /** Dispatches made to workers (0: never dispatched, or answered from the cache). */
    this.attempts = Number(body.attempts ?? 0);
    this.queueUs = Number(body.queue_us ?? 0);
    this.runUs = Number(body.run_us ?? 0);
    this.totalUs = Number(body.total_us ?? 0);
    /** Answered from the response cache (10b). */
    this.cached = body.cached === true;
  }
}

/** Bytes from a payload given as bytes or a string (UTF-8). */
function toPayload(payload) {
  if (payload === undefined || payload instanceof Uint8Array || typeof payload === 'string') return payload;
  throw new TypeError('a payload is a Buffer, a Uint8Array or a string');
}

/** Header entries from a plain object, a Map or an iterable of pairs, in the order given (E5). */
function toPairs(headers) {
  if (headers === undefined) return undefined;
  const entries = Symbol.iterator in headers ? [...headers] : Object.entries(headers);
  return entries.map(([k, v]) => [String(k), String(v)]);
}

function strings(list, name, { max }) {
  if (!Array.isArray(list) || list.length > max || list.some((s) => typeof s !== 'string' || s === '')) {
    throw new TypeError(`cache policy: ${name} is an array of at most ${max} non-empty strings`);
  }
  return list;
}

/**
 * The SUBMIT `cache` map (10b) from `true` (cache with the defaults) or
 * `{ ttlMs, tags, key, exclude, headers }`, keys in the order of 10b.
 */
function encodeCachePolicy(policy) {
  if (policy === undefined || policy === false) return undefined;
  const { ttlMs = 0, tags, key, exclude, headers } = policy === true ? {} : policy;
  if (key !== undefined && exclude !== undefined) throw new TypeError('cache policy: key and exclude exclude each other');
  const lists = [
    ['tags', tags, 16],
    ['key', key, 32],
    ['exclude', exclude, 32],
    ['headers', headers, 32],
  ].filter(([, list]) => list !== undefined);
  const w = new Writer().map(lists.length + (ttlMs > 0 ? 1 : 0));
  if (ttlMs > 0) w.str('ttl_ms').uint(ttlMs);
  for (const [name, list, max] of lists) {
    w.str(name).array(list.length);
    for (const s of strings(list, name, { max })) w.str(s);
  }
  return w.finish();
}

/** The error a task ends with for a RESULT whose status is not ok. */
function errorFor(body) {
  const result = new Result(body);
  const ErrorClass = ERRORS[body.status];
  return new ErrorClass(body.error || body.status, {
    id: body.id,
    result,
    retryAfterMs: Number(body.retry_after_ms ?? 0),
  });
}

/**
 * A client of a Yard broker. One client is one identity (a DEALER routing
 * id kept across reconnects); create it once and share it.
 */
export class Client {
  #link;
  #events;
  #logger;
  #tasks = new Map();
  #acks = new Map();
  #subscriptions = new Set();
  #ticker;
  #idPrefix = randomBytes(4).toString('hex');
  #nextId = 0;
  #nextSeq = 0;
  #busySince = 0;
  #closed = false;

  /**
   * @param {object} [options]
   * @param {string} [options.broker] the broker's tasks endpoint
   * @param {string} [options.events] the broker's events endpoint (for subscribe)
   * @param {{warn: (message: string) => void}} [options.logger] where discarded
   *   input and refusals are reported (default: console)
   */
  constructor({ broker = DEFAULT_BROKER, events = DEFAULT_EVENTS, logger = console } = {}) {
    this.#events = events;
    this.#logger = logger;
    this.#link = new Link({
      endpoint: broker,
      role: 'C',
      routingId: randomBytes(16).toString('hex'),
      logger,
      onMessage: (message) => this.#onMessage(message),
      onSendFailure: (err) => this.#reconnect(`send failed: ${err.message}`),
    });
    this.#link.open();
    this.#ticker = setInterval(() => this.#tick(), TICK_MS).unref();
  }

  /**
   * Runs one task and resolves with its Result, or rejects with the
   * YardError subclass of its status.
   * @returns {Promise<Result>}
   */
  call(service, payload, options) {
    return this.submit(service, payload, options).promise;
  }

  /**
   * Submits one task. Returns at once a handle: `{ id, promise, cancel() }`.
   */
  submit(service, payload, options = {}) {
    const id = options.id ?? `${this.#idPrefix}-${++this.#nextId}`;
    let settle;
    const promise = new Promise((resolve, reject) => {
      settle = { resolve, reject };
    });
    const handle = { id, promise, cancel: () => this.cancel(id) };
    if (this.#closed) {
      settle.reject(new CancelledError('client closed', { id }));
      return handle;
    }
    if (typeof id !== 'string') {
      settle.reject(new InvalidError('bad_field: a task id is a string', { id }));
      return handle;
    }
    if (this.#tasks.has(id)) {
      settle.reject(new InvalidError(`bad_field: task id ${quote(id)} is still outstanding`, { id }));
      return handle;
    }
    let body;
    try {
      body = encodeBody('C', 'SUBMIT', {
        id,
        service,
        payload: toPayload(payload),
        timeout_ms: options.timeoutMs,
        retries: options.retries,
        backoff_ms: options.backoffMs,
        priority: options.priority,
        headers: toPairs(options.headers),
        cache: encodeCachePolicy(options.cache),
        fallback: options.fallback,
      });
    } catch (err) {
      if (!(err instanceof WireError || err instanceof TypeError)) throw err;
      const message = err instanceof WireError ? err.message : `bad_field: ${err.message}`;
      settle.reject(new InvalidError(message, { id, cause: err }));
      return handle;
    }
    const giveUpMs = (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) + GIVE_UP_SLACK_MS;
    const task = {
      body,
      cancelRequested: false,
      settle,
      giveUp: setTimeout(() => this.#finish(id, new BrokerUnreachableError('no reply from broker', { id })), giveUpMs),
      signal: options.signal,
      onAbort: () => this.cancel(id),
    };
    this.#becomeBusy();
    this.#tasks.set(id, task);
    this.#link.post('SUBMIT', body);
    if (task.signal?.aborted) this.cancel(id);
    else task.signal?.addEventListener('abort', task.onAbort, { once: true });
    return handle;
  }

  /**
   * Submits one task per payload, as SUBMIT messages of up to 256 bodies, and
   * resolves once all are done with, in the order of `payloads`, each task's
   * Result or the YardError it ended with. Options apply to every task
   * (an `id` option is not allowed).
   * @returns {Promise<Array<Result | import('./errors.js').YardError>>}
   */
  async batch(service, payloads, options = {}) {
    if (options.id !== undefined) throw new TypeError('batch: tasks get their own ids');
    const handles = [...payloads].map((payload) => this.submit(service, payload, options));
    return Promise.all(handles.map((h) => h.promise.catch((err) => err)));
  }

  /**
   * Runs a task per item of `payloads` (any iterable or async iterable),
   * keeping up to `window` tasks outstanding, and yields the Results in the
   * order of the input. A task that fails throws its error from the
   * iterator; stopping early cancels the tasks still outstanding.
   */
  async *map(service, payloads, { window = 64, ...options } = {}) {
    if (!Number.isInteger(window) || window < 1) throw new TypeError('map: window is an integer >= 1');
    if (options.id !== undefined) throw new TypeError('map: tasks get their own ids');
    const inFlight = [];
    try {
      for await (const payload of payloads) {
        const handle = this.submit(service, payload, options);
        handle.promise.catch(() => {}); // its failure is thrown when its turn comes
        inFlight.push(handle);
        if (inFlight.length >= window) yield await inFlight.shift().promise;
      }
      while (inFlight.length > 0) yield await inFlight.shift().promise;
    } finally {
      for (const handle of inFlight) handle.cancel();
    }
  }

  /**
   * Asks the broker to cancel a task (5.4). The task still ends with one
   * outcome: CancelledError, or the result it already had.
   */
  cancel(id) {
    const task = this.#tasks.get(id);
    if (!task || task.cancelRequested) return;
    task.cancelRequested = true;
    this.#link.post('CANCEL', encodeBody('C', 'CANCEL', { id }));
  }

  /**
   * Publishes one event (5.11) on the tasks endpoint. `payload` is any value
   * msgpack can carry (bytes travel as bin). With `confirm`, resolves once
   * the broker acknowledged it (PUBLISH_ACK) and rejects with InvalidError
   * if it refused it, or BrokerUnreachableError after `timeoutMs`.
   */
  async publish(type, payload, { source, tsUs, traceId, meta, confirm = false, timeoutMs = 5000 } = {}) {
    if (this.#closed) throw new CancelledError('client closed');
    const seq = confirm ? ++this.#nextSeq : undefined;
    let raw;
    try {
      raw = payload === undefined ? undefined : encodeValue(payload);
    } catch (err) {
      throw new InvalidError(`bad_field: payload: ${err.message}`, { cause: err });
    }
    let body;
    try {
      body = encodeBody('C', 'PUBLISH', {
        type,
        source,
        ts_us: tsUs,
        payload: raw && Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength),
        trace_id: traceId,
        meta: toPairs(meta),
        seq,
        ack: confirm,
      });
    } catch (err) {
      if (!(err instanceof WireError || err instanceof TypeError)) throw err;
      const message = err instanceof WireError ? err.message : `bad_field: ${err.message}`;
      throw new InvalidError(message, { cause: err });
    }
    if (!confirm) {
      this.#link.post('PUBLISH', body);
      return;
    }
    await new Promise((resolve, reject) => {
      const giveUp = setTimeout(() => this.#settleAck(seq, new BrokerUnreachableError()), timeoutMs);
      this.#becomeBusy();
      this.#acks.set(seq, { body, resolve, reject, giveUp });
      this.#link.post('PUBLISH', body);
    });
  }

  /**
   * Subscribes to events whose type starts with one of `prefixes` (all
   * events when empty) on the events endpoint. Resolves once the broker
   * acknowledged the subscription, so events published from then on reach it.
   * @returns {Promise<Subscription>}
   */
  async subscribe(prefixes = [], options = {}) {
    if (this.#closed) throw new CancelledError('client closed');
    const subscription = new Subscription({ endpoint: this.#events, prefixes, logger: this.#logger, ...options });
    this.#subscriptions.add(subscription);
    subscription.closed.then(() => this.#subscriptions.delete(subscription));
    await subscription.start();
    return subscription;
  }

  /** The broker's metrics: the admin command `stats` (section 10), parsed. */
  async stats({ timeoutMs = 5000 } = {}) {
    const result = await this.call('yard.admin', 'stats', { timeoutMs });
    return JSON.parse(result.payload.toString('utf8'));
  }

  /**
   * Probes every worker through the broker (admin `ping`, section 10) and
   * resolves with the broker's answer once all answered or `timeoutMs` passed.
   */
  async ping(timeoutMs = 1000) {
    const result = await this.call('yard.admin', `ping ${timeoutMs}`, { timeoutMs: timeoutMs + 5000 });
    return JSON.parse(result.payload.toString('utf8'));
  }

  /**
   * Closes the client and its subscriptions. Tasks still outstanding end with
   * CancelledError, and the broker is told to drop them (DISCONNECT).
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ticker);
    const busy = this.#isBusy;
    for (const id of [...this.#tasks.keys()]) this.#finish(id, new CancelledError('client closed', { id }));
    for (const seq of [...this.#acks.keys()]) this.#settleAck(seq, new CancelledError('client closed'));
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
    if (busy) await this.#link.send('DISCONNECT');
    this.#link.close(busy ? 100 : 0);
  }

  get #isBusy() {
    return this.#tasks.size > 0 || this.#acks.size > 0;
  }

  /** The silence timer counts from when the client last became busy (8.3). */
  #becomeBusy() {
    if (this.#isBusy) return;
    this.#busySince = now();
  }

  #tick() {
    if (this.#isBusy) this.#link.keepAlive(this.#busySince, (reason) => this.#reconnect(reason));
  }

  /** A new socket with the same identity, and every outstanding body again (8.3). */
  #reconnect(reason) {
    if (this.#closed) return;
    this.#logger.warn(`yard: reconnecting to the broker: ${reason}`);
    this.#link.open();
    for (const task of this.#tasks.values()) this.#link.post('SUBMIT', task.body);
    for (const [id, task] of this.#tasks) {
      if (task.cancelRequested) this.#link.post('CANCEL', encodeBody('C', 'CANCEL', { id }));
    }
    for (const ack of this.#acks.values()) this.#link.post('PUBLISH', ack.body);
  }

  #finish(id, outcome) {
    const task = this.#tasks.get(id);
    if (!task) return;
    this.#tasks.delete(id);
    clearTimeout(task.giveUp);
    task.signal?.removeEventListener('abort', task.onAbort);
    if (outcome instanceof Error) task.settle.reject(outcome);
    else task.settle.resolve(outcome);
  }

  #settleAck(seq, error) {
    const ack = this.#acks.get(seq);
    if (!ack) return;
    this.#acks.delete(seq);
    clearTimeout(ack.giveUp);
    if (error) ack.reject(error);
    else ack.resolve();
  }

  #onMessage({ command, bodies }) {
    switch (command) {
      case 'RESULT':
        for (const body of bodies) this.#onResult(body);
        break;
      case 'PUBLISH_ACK':
        for (const body of bodies) this.#onPublishAck(body);
        break;
      case 'ERROR':
        this.#onError(bodies[0]);
        break;
      case 'DISCONNECT':
        // The broker does not know this client (it restarted): resend (8.3).
        this.#reconnect('the broker sent DISCONNECT');
        break;
      case 'HEARTBEAT':
        break;
      default:
        this.#logger.warn(`yard: discarded ${command}, not a command for clients`);
    }
  }

  #onResult(body) {
    if (body instanceof WireError) {
      if (typeof body.id === 'string' && this.#tasks.has(body.id)) {
        this.#finish(body.id, new InvalidError(`bad result from broker: ${body.message}`, { id: body.id }));
      } else {
        this.#logger.warn(`yard: discarded a bad RESULT body: ${quote(body.message)}`);
      }
      return;
    }
    this.#finish(body.id, body.status === 'ok' ? new Result(body) : errorFor(body));
  }

  #onPublishAck(body) {
    if (body instanceof WireError) {
      this.#logger.warn(`yard: discarded a bad PUBLISH_ACK body: ${quote(body.message)}`);
      return;
    }
    const seq = Number(body.seq);
    this.#settleAck(seq, body.status === 'ok' ? undefined : new InvalidError(body.error || 'event refused'));
  }

  #onError(body) {
    if (body instanceof WireError) {
      this.#logger.warn(`yard: discarded a bad ERROR body: ${quote(body.message)}`);
      return;
    }
    const text = `${body.code}: ${body.message}`;
    if (body.code === 'bad_version') {
      // 13: the broker speaks another version; end everything outstanding.
      for (const id of [...this.#tasks.keys()]) this.#finish(id, new InvalidError(body.message, { id }));
      for (const seq of [...this.#acks.keys()]) this.#settleAck(seq, new InvalidError(body.message));
    } else if (typeof body.id === 'string' && this.#tasks.has(body.id)) {
      this.#finish(body.id, new InvalidError(body.message, { id: body.id }));
    }
    this.#logger.warn(`yard: the broker refused a message: ${quote(text)}`);
  }
}
