// The worker (PROTOCOL.md 8.2): one connection per service, READY with a
// capacity, handlers run as TASKs arrive, RESULTs batched, CANCEL as an
// AbortSignal, heartbeats carrying health reports (5.7, 8.8), liveness and
// reconnection with backoff, graceful drain.

import { hostname } from 'node:os';

import { CancelledError, InvalidError, Reject, WireError } from './errors.js';
import { Link, now, quote } from './link.js';
import { VERSION } from './version.js';
import { DEFAULT_BROKER, HEARTBEAT_INTERVAL_MS, HEARTBEAT_LIVENESS, encodeBody } from './wire.js';

const TICK_MS = 100;
const REPORT_EVERY_MS = 5 * HEARTBEAT_INTERVAL_MS;
const MAX_ERROR_BYTES = 4096;
const EMPTY = Buffer.alloc(0);

/** Delay before reconnect attempt n (8.2): 100 ms doubling, capped at 5000 ms, +-20 %. */
export function reconnectDelay(n) {
  const base = Math.min(5000, 100 * 2 ** (n - 1));
  return Math.min(5000, base * (0.8 + 0.4 * Math.random()));
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** `text` cut to at most `max` UTF-8 bytes, at a character boundary. */
function truncateUtf8(text, max) {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}

function toOutput(value) {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Uint8Array || typeof value === 'string') return value;
  throw new TypeError(`the handler returned ${typeof value}, not bytes or a string`);
}

/** What a handler's failure becomes on the wire (5.3). */
function failure(err, signal) {
  const text = (value) => truncateUtf8(value instanceof Error ? value.message : String(value), MAX_ERROR_BYTES);
  if (err instanceof Reject) return { status: 'invalid', error: text(err) };
  if (signal.aborted) return { status: 'cancelled', error: 'cancelled' };
  return { status: 'error', error: text(err) || 'handler failed' };
}

/**
 * One service's connection to the broker:
 * connecting -> registering -> serving -> draining -> gone (8.2).
 */
class ServiceWorker {
  #service;
  #handler;
  #options;
  #logger;
  #readyBody;
  #link;
  #state = 'connecting';
  #held = new Map();
  #reconnects = 0;
  #reconnectTimer = null;
  #graceTimer = null;
  #ticker = null;
  #lastReport = 0;
  #rssPeak = 0;
  #registered;
  #stopped;

  constructor(service, handler, options) {
    this.#service = service;
    this.#handler = handler;
    this.#options = options;
    this.#logger = options.logger;
    this.#readyBody = this.#ready(options.capacity);
    this.#link = new Link({
      endpoint: options.broker,
      role: 'W',
      reconnect: true,
      logger: this.#logger,
      onMessage: (message) => this.#onMessage(message),
      onSendFailure: (err) => this.#lost(`send failed: ${err.message}`),
    });
    this.#registered = deferred();
    this.#stopped = deferred();
  }

  /** Connects and resolves once the broker acknowledged the first READY. */
  start() {
    this.#ticker = setInterval(() => this.#tick(), TICK_MS);
    this.#connect();
    return this.#registered.promise;
  }

  /** Drains: READY capacity 0, finish held tasks (at most graceMs), DISCONNECT. */
  stop() {
    switch (this.#state) {
      case 'serving':
        this.#state = 'draining';
        this.#link.send('READY', [this.#ready(0)]);
        if (this.#held.size === 0) this.#finish();
        else this.#graceTimer = setTimeout(() => this.#finish(), this.#options.graceMs);
        break;
      case 'connecting':
      case 'registering':
        this.#finish();
        break;
      default: // draining or gone: already on its way
    }
    return this.#stopped.promise;
  }

  #ready(capacity) {
    const { name, version } = this.#options;
    return encodeBody('W', 'READY', { service: this.#service, capacity, name, pid: process.pid, version });
  }

  #connect() {
    this.#state = 'registering';
    this.#link.open();
    this.#link.send('READY', [this.#readyBody]);
  }

  /** The connection is gone: abandon held tasks and reconnect after a backoff, or stop when draining. */
  #lost(reason) {
    if (this.#state === 'gone') return;
    this.#logger.warn(`yard: worker ${this.#service}: connection lost: ${reason}`);
    this.#link.close();
    this.#abandonHeld();
    if (this.#state === 'draining') {
      this.#finish();
      return;
    }
    this.#state = 'connecting';
    this.#reconnects += 1;
    this.#reconnectTimer = setTimeout(() => this.#connect(), reconnectDelay(this.#reconnects));
  }

  /** Held tasks are the broker's again: their handlers are aborted and their results never sent. */
  #abandonHeld() {
    for (const { controller } of this.#held.values()) controller.abort();
    this.#held.clear();
  }

  /** GONE: DISCONNECT after what is queued if connected, close, and settle `start`/`stop`. */
  async #finish(error) {
    if (this.#state === 'gone') return;
    const connected = this.#state !== 'connecting';
    this.#state = 'gone';
    clearInterval(this.#ticker);
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#graceTimer);
    this.#abandonHeld();
    if (connected) await this.#link.send('DISCONNECT');
    this.#link.close(connected ? 100 : 0);
    // No effect once registered; before, `handle` rejects, which is not an
    // unhandled rejection even if nobody awaits it.
    this.#registered.promise.catch(() => {});
    this.#registered.reject(error ?? new CancelledError('worker stopped before it was registered'));
    this.#stopped.resolve();
  }

  #tick() {
    if (this.#state === 'connecting' || this.#state === 'gone') return;
    const t = now();
    const silence = t - this.#link.lastHeard;
    if (silence >= HEARTBEAT_INTERVAL_MS * HEARTBEAT_LIVENESS) {
      this.#lost(`no message from the broker for ${Math.round(silence)} ms`);
    } else if (t - this.#link.lastSent >= HEARTBEAT_INTERVAL_MS || t - this.#lastReport >= REPORT_EVERY_MS) {
      this.#sendReport();
    }
  }

  /** A HEARTBEAT carrying this worker's health report (5.7); `probe` answers a PROBE. */
  #sendReport(probe) {
    const rss = process.memoryUsage.rss();
    this.#rssPeak = Math.max(this.#rssPeak, rss);
    this.#lastReport = now();
    const report = encodeBody('W', 'HEARTBEAT', {
      probe,
      uptime_ms: Math.round(process.uptime() * 1000),
      version: this.#options.version,
      rss,
      rss_peak: this.#rssPeak,
      in_flight: this.#held.size,
      pending: 0, // a handler starts as soon as its TASK arrives (zero: left out on the wire)
    });
    this.#link.send('HEARTBEAT', [report]);
  }

  #onMessage({ command, bodies }) {
    if (command === 'ERROR') {
      this.#onError(bodies[0]);
      return;
    }
    if (command === 'DISCONNECT') {
      this.#lost('the broker sent DISCONNECT');
      return;
    }
    if (this.#state === 'registering') {
      this.#state = 'serving';
      this.#reconnects = 0;
      this.#registered.resolve();
    }
    switch (command) {
      case 'TASK':
        for (const body of bodies) this.#onTask(body);
        break;
      case 'CANCEL':
        for (const body of bodies) this.#onCancel(body);
        break;
      case 'HEARTBEAT':
        if (bodies.length > 0 && !(bodies[0] instanceof WireError)) this.#sendReport(bodies[0].probe);
        break;
      default:
        this.#logger.warn(`yard: worker ${this.#service}: discarded ${command}, not a command for workers`);
    }
  }

  #onError(body) {
    if (body instanceof WireError) {
      this.#logger.warn(`yard: worker ${this.#service}: discarded a bad ERROR body: ${quote(body.message)}`);
      return;
    }
    const text = `${body.code}: ${body.message}`;
    this.#logger.warn(`yard: worker ${this.#service}: the broker refused a message: ${quote(text)}`);
    // A refused READY is a configuration fault; another version cannot be served (8.2, 13).
    if (this.#state === 'registering' || body.code === 'bad_version') this.#finish(new InvalidError(text));
  }

  #onTask(body) {
    if (body instanceof WireError) {
      if (body.job === undefined) {
        this.#logger.warn(`yard: worker ${this.#service}: discarded a bad TASK body: ${quote(body.message)}`);
      } else {
        const error = truncateUtf8(`invalid task: ${body.message}`, MAX_ERROR_BYTES);
        this.#link.post('RESULT', encodeBody('W', 'RESULT', { job: body.job, status: 'error', error }));
      }
      return;
    }
    if (this.#held.has(body.job)) return; // a duplicate
    const entry = { controller: new AbortController() };
    this.#held.set(body.job, entry);
    this.#run(body, entry);
  }

  #onCancel(body) {
    if (body instanceof WireError) {
      this.#logger.warn(`yard: worker ${this.#service}: discarded a bad CANCEL body: ${quote(body.message)}`);
      return;
    }
    this.#held.get(body.job)?.controller.abort();
  }

  async #run(body, entry) {
    const { signal } = entry.controller;
    const job = {
      id: typeof body.id === 'string' ? body.id : body.id.toString('utf8'),
      job: body.job,
      service: body.service,
      payload: body.payload ?? EMPTY,
      timeoutMs: Number(body.timeout_ms),
      attempt: Number(body.attempt),
      headers: Object.fromEntries(body.headers ?? []),
      signal,
    };
    const started = process.hrtime.bigint();
    let outcome;
    try {
      outcome = { status: 'ok', payload: toOutput(await this.#handler(job)) };
    } catch (err) {
      outcome = failure(err, signal);
    }
    const runUs = Number((process.hrtime.bigint() - started) / 1000n);
    if (this.#held.get(body.job) !== entry) return; // abandoned with its connection
    this.#held.delete(body.job);
    let result;
    try {
      result = encodeBody('W', 'RESULT', { job: body.job, ...outcome, run_us: runUs });
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      const error = truncateUtf8(`unsendable result: ${err.message}`, MAX_ERROR_BYTES);
      result = encodeBody('W', 'RESULT', { job: body.job, status: 'error', error, run_us: runUs });
    }
    this.#link.post('RESULT', result);
    if (this.#state === 'draining' && this.#held.size === 0) this.#finish();
  }
}

/**
 * Serves services with handlers. Each `handle` opens its own connection
 * (the protocol registers one service per connection).
 */
export class Worker {
  #options;
  #services = new Map();

  /**
   * @param {object} [options]
   * @param {string} [options.broker] the broker's tasks endpoint
   * @param {number} [options.capacity] tasks each service runs at once (1..10000)
   * @param {string} [options.name] name shown in the broker's stats
   * @param {string} [options.version] software version sent in READY and reports
   * @param {number} [options.graceMs] how long `stop` waits for running handlers
   * @param {{warn: (message: string) => void}} [options.logger]
   */
  constructor({
    broker = DEFAULT_BROKER,
    capacity = 8,
    name = `${hostname()}-${process.pid}`,
    version = VERSION,
    graceMs = 10_000,
    logger = console,
  } = {}) {
    this.#options = { broker, capacity, name, version, graceMs, logger };
  }

  /**
   * Serves `service` with `handler(job)`: return bytes or a string for `ok`,
   * throw for `error`, throw a `Reject` for `invalid`. Resolves once the
   * broker registered the worker; rejects if it refused the registration.
   */
  async handle(service, handler, { capacity = this.#options.capacity } = {}) {
    if (typeof handler !== 'function') throw new TypeError('handle: the handler is a function');
    if (service === 'yard.admin') throw new InvalidError('bad_field: yard.admin is served by the broker');
    if (this.#services.has(service)) throw new InvalidError(`bad_field: already serving ${quote(service)}`);
    if (!Number.isInteger(capacity) || capacity < 1) throw new InvalidError('bad_field: capacity is 1..10000');
    let connection;
    try {
      connection = new ServiceWorker(service, handler, { ...this.#options, capacity });
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      throw new InvalidError(err.message, { cause: err });
    }
    this.#services.set(service, connection);
    return connection.start();
  }

  /** Stops every service gracefully; resolves once all are gone. */
  async stop() {
    await Promise.all([...this.#services.values()].map((s) => s.stop()));
  }
}
