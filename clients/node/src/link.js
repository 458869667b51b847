// One DEALER connection to a broker endpoint (PROTOCOL.md 3): the socket
// options, sends serialised (zeromq.js allows one send in flight per
// socket), a receive loop that hands well-formed broker messages to its
// owner, and the times of the last message heard and sent.

import { Dealer } from 'zeromq';

import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_LIVENESS, MAX_BATCH, MAX_MSGSIZE, decodeMessage, header } from './wire.js';

export const now = () => performance.now();

/** Untrusted text made safe to log (control characters escaped, 11.3). */
export const quote = (text) => JSON.stringify(String(text));

/** Splits encoded bodies into batches of at most 256 bodies and 16 MiB (4.6). */
function* batches(bodies) {
  let batch = [];
  let bytes = 0;
  for (const body of bodies) {
    if (batch.length === MAX_BATCH || (batch.length > 0 && bytes + body.length > MAX_MSGSIZE)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(body);
    bytes += body.length;
  }
  if (batch.length > 0) yield batch;
}

export class Link {
  #socket = null;
  #queue = [];
  #sending = false;
  #runs = [];
  #flushScheduled = false;
  #lastHeartbeat = 0;
  #options;

  /** Monotonic time of the last message received (any message is a sign of life). */
  lastHeard = 0;
  /** Monotonic time of the last message sent. */
  lastSent = 0;

  /**
   * @param {object} options
   * @param {string} options.endpoint broker endpoint to connect to
   * @param {'C' | 'W'} options.role role byte of what this link sends
   * @param {string} [options.routingId] identity kept across reconnects (clients, subscribers)
   * @param {boolean} [options.reconnect] let libzmq reconnect by itself; off
   *   (ZMQ_RECONNECT_IVL -1) for clients and subscribers, whose owners notice a
   *   lost connection by silence and open a new socket themselves (8.3)
   * @param {(message: {command: string, bodies: Array<object | import('./errors.js').WireError>}) => void} options.onMessage
   * @param {(error: Error) => void} options.onSendFailure a send failed: the socket was closed
   * @param {{warn: (message: string) => void}} options.logger
   */
  constructor(options) {
    this.#options = options;
  }

  /** Opens a new socket and connects it. Messages still queued for an old socket are dropped. */
  open() {
    this.close();
    const { endpoint, routingId, reconnect = false } = this.#options;
    const socket = new Dealer({
      linger: 0,
      maxMessageSize: MAX_MSGSIZE,
      ...(routingId === undefined ? {} : { routingId }),
      ...(reconnect ? {} : { reconnectInterval: -1 }),
    });
    socket.connect(endpoint);
    this.#socket = socket;
    this.lastHeard = now();
    this.lastSent = now();
    this.#lastHeartbeat = 0;
    this.#receive(socket);
  }

  /**
   * The liveness rule of a peer that waits on the broker (8.3, 8.5), run by
   * the owner's timer while it waits: silence counts from the later of the
   * last message heard and `since`; after one interval of it, HEARTBEAT at
   * most once per interval; after three, `onDead(reason)`.
   */
  keepAlive(since, onDead) {
    const t = now();
    const silence = t - Math.max(this.lastHeard, since);
    if (silence >= HEARTBEAT_INTERVAL_MS * HEARTBEAT_LIVENESS) {
      onDead(`no message from the broker for ${Math.round(silence)} ms`);
    } else if (silence >= HEARTBEAT_INTERVAL_MS && t - this.#lastHeartbeat >= HEARTBEAT_INTERVAL_MS) {
      this.#lastHeartbeat = t;
      this.send('HEARTBEAT');
    }
  }

  /**
   * Closes the socket. Messages not yet handed to libzmq are dropped; those
   * handed over are given `lingerMs` to leave.
   */
  close(lingerMs = 0) {
    const socket = this.#socket;
    if (!socket) return;
    this.#socket = null;
    for (const { done } of this.#queue) done();
    this.#queue = [];
    this.#runs = [];
    if (lingerMs > 0) socket.linger = lingerMs;
    socket.close();
  }

  /**
   * Sends a message now: `bodies` are encoded body frames. The promise
   * settles (never rejects) once the message is handed to libzmq or dropped.
   */
  send(command, bodies = []) {
    if (!this.#socket) return Promise.resolve();
    this.#flushPosted(); // what was posted before goes first
    return new Promise((done) => {
      this.#queue.push({ frames: [header(this.#options.role, command), ...bodies], done });
      this.#kick();
    });
  }

  /**
   * Queues one body to be sent with the others posted in the same turn of
   * the event loop, as few messages as section 4.6 allows. Order is kept.
   */
  post(command, body) {
    if (!this.#socket) return;
    const last = this.#runs.at(-1);
    if (last?.command === command) last.bodies.push(body);
    else this.#runs.push({ command, bodies: [body] });
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flushPosted();
    });
  }

  #flushPosted() {
    const runs = this.#runs;
    this.#runs = [];
    for (const { command, bodies } of runs) {
      for (const batch of batches(bodies)) this.send(command, batch);
    }
  }

  #kick() {
    if (!this.#sending && this.#socket && this.#queue.length > 0) this.#drain(this.#socket);
  }

  async #drain(socket) {
    this.#sending = true;
    try {
      while (this.#queue.length > 0 && socket === this.#socket) {
        const { frames, done } = this.#queue.shift();
        try {
          await socket.send(frames);
          this.lastSent = now();
        } catch (err) {
          if (socket !== this.#socket) return;
          this.close();
          this.#options.onSendFailure(err);
          return;
        } finally {
          done();
        }
      }
    } finally {
      this.#sending = false;
      this.#kick(); // messages queued meanwhile for a newer socket
    }
  }

  async #receive(socket) {
    try {
      for await (const frames of socket) {
        if (socket !== this.#socket) return;
        this.lastHeard = now();
        this.#dispatch(frames);
      }
    } catch (err) {
      if (socket === this.#socket) this.#options.logger.warn(`yard: receive failed: ${err.message}`);
    }
  }

  #dispatch(frames) {
    const { logger, onMessage } = this.#options;
    let message;
    try {
      message = decodeMessage(frames);
    } catch (err) {
      logger.warn(`yard: discarded a message from the broker: ${quote(err.message)}`);
      return;
    }
    if (message.role !== 'B') {
      logger.warn(`yard: discarded ${message.command} with role ${message.role} on a broker link`);
      return;
    }
    try {
      onMessage(message);
    } catch (err) {
      logger.warn(`yard: failed to handle ${message.command}: ${err.stack}`);
    }
  }
}
