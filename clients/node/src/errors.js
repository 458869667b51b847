// Errors: one class per non-ok RESULT status (PROTOCOL.md 6.1), the
// worker-side `Reject`, and `WireError` for bytes that break the protocol.

/** Base class of every error a task, a publish or a subscription ends with. */
export class YardError extends Error {
  /**
   * @param {string} message the error text (PROTOCOL.md 6.3)
   * @param {object} [details]
   * @param {string} [details.status] the wire status, e.g. "error"
   * @param {string} [details.id] the task id, when the error concerns a task
   * @param {import('./client.js').Result} [details.result] the broker's RESULT
   * @param {unknown} [details.cause]
   */
  constructor(message, { status, id, result, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.status = status;
    this.id = id;
    this.result = result;
  }
}

/** The handler failed and no retry was left (status `error`). */
export class TaskError extends YardError {
  constructor(message, details = {}) {
    super(message, { ...details, status: 'error' });
  }
}

/** The task's deadline passed (status `timeout`). */
export class TimeoutError extends YardError {
  constructor(message, details = {}) {
    super(message, { ...details, status: 'timeout' });
  }
}

/**
 * The broker never answered: the client gave up `timeout_ms` + 2000 ms after
 * sending (PROTOCOL.md 8.3). Its wire status is `timeout`, so it is a
 * TimeoutError too.
 */
export class BrokerUnreachableError extends TimeoutError {
  constructor(message = 'no reply from broker', details = {}) {
    super(message, details);
  }
}

/** The service's queue was full (status `rejected`). */
export class RejectedError extends YardError {
  constructor(message, { retryAfterMs = 0, ...details } = {}) {
    super(message, { ...details, status: 'rejected' });
    /** Wait at least this long before resubmitting. */
    this.retryAfterMs = retryAfterMs;
  }
}

/** The service's circuit breaker is open (status `circuit_open`, 8.6). */
export class CircuitOpenError extends YardError {
  constructor(message, { retryAfterMs = 0, ...details } = {}) {
    super(message, { ...details, status: 'circuit_open' });
    /** Milliseconds until the breaker lets trial tasks through. */
    this.retryAfterMs = retryAfterMs;
  }
}

/** The task was cancelled (status `cancelled`). */
export class CancelledError extends YardError {
  constructor(message, details = {}) {
    super(message, { ...details, status: 'cancelled' });
  }
}

/** The broker stopped before finishing the task (status `shutdown`). */
export class ShutdownError extends YardError {
  constructor(message, details = {}) {
    super(message, { ...details, status: 'shutdown' });
  }
}

/** The request broke a rule, or the worker refused it (status `invalid`). */
export class InvalidError extends YardError {
  constructor(message, details = {}) {
    super(message, { ...details, status: 'invalid' });
  }
}

/**
 * Thrown by a worker handler to refuse the request itself: the task ends
 * `invalid` at once, without retry, and the service's circuit breaker does
 * not count it (PROTOCOL.md 5.3).
 */
export class Reject extends Error {
  constructor(message) {
    super(message);
    this.name = 'Reject';
  }
}

const WIRE_CODES = {
  YARD_E_HEADER: 'malformed',
  YARD_E_ROLE: 'malformed',
  YARD_E_MALFORMED: 'malformed',
  YARD_E_VERSION: 'bad_version',
  YARD_E_UNKNOWN_CMD: 'unknown_command',
  YARD_E_FRAMES: 'bad_frames',
  YARD_E_TOO_LARGE: 'too_large',
  YARD_E_TYPE: 'bad_field',
  YARD_E_RANGE: 'bad_field',
  YARD_E_MISSING: 'bad_field',
};

/**
 * A message or body that breaks PROTOCOL.md. `code` is the error's C name
 * (`YARD_E_RANGE`, as in the test vectors), `wireCode` its ERROR code
 * (`bad_field`, 6.2). `id` and `job` are set when the failing body still
 * let them be read (section 9 "id readable", 8.2 "job readable").
 */
export class WireError extends Error {
  constructor(code, detail) {
    super(`${WIRE_CODES[code]}: ${detail}`);
    this.name = 'WireError';
    this.code = code;
    this.wireCode = WIRE_CODES[code];
    this.detail = detail;
    this.id = undefined;
    this.job = undefined;
  }
}
