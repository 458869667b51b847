// The Node.js conformance runner (tests/conformance/README.md): the worker
// and the client of the yard-client library driven by the suite's scenarios.
//
//     node runner.js worker --broker EP --service NAME --capacity N --lang LANG
//     node runner.js client --broker EP --events EP < program.json
//
// It uses only the library's public entry point.

import { closeSync, openSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import {
  CancelledError,
  CircuitOpenError,
  Client,
  InvalidError,
  RejectedError,
  ShutdownError,
  TaskError,
  TimeoutError,
  Worker,
  YardError,
} from '../../../clients/node/src/index.js';

/** YARD_MAX_PAYLOAD + 1: what the `oversize` op answers. */
const OVERSIZE_BYTES = 4 * 1024 * 1024 + 1;

/**
 * How long a stopping worker lets running handlers finish: run.py allows a
 * worker 5 s from SIGTERM to exit, the library's default would be 10 s.
 */
const STOP_GRACE_MS = 3000;

/** The wire status of each of the library's task errors (BrokerUnreachableError is a TimeoutError). */
const STATUS_OF = [
  [TaskError, 'error'],
  [TimeoutError, 'timeout'],
  [RejectedError, 'rejected'],
  [CircuitOpenError, 'circuit_open'],
  [CancelledError, 'cancelled'],
  [ShutdownError, 'shutdown'],
  [InvalidError, 'invalid'],
];

const TIMED_OUT = Symbol('timed out');

/** Something the runner cannot do as asked: bad arguments or a bad program (exit 1). */
class RunnerError extends Error {}

/** `promise`'s value, or TIMED_OUT once `ms` passed first. */
function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The named options of argv, every one of them required. */
function requiredOptions(argv, names) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: Object.fromEntries(names.map((name) => [name, { type: 'string' }])),
      strict: true,
    }));
  } catch (err) {
    throw new RunnerError(err.message);
  }
  for (const name of names) {
    if (values[name] === undefined) throw new RunnerError(`--${name} is required`);
  }
  return values;
}

// ---- the worker runner ----

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A task payload as its JSON object; throws, naming the problem, for anything else. */
function parseTask(payload) {
  let task;
  try {
    task = JSON.parse(utf8.decode(payload));
  } catch (err) {
    throw new Error(`the payload is not UTF-8 JSON: ${err.message}`);
  }
  if (task === null || typeof task !== 'object' || Array.isArray(task)) {
    throw new Error('the payload is not a JSON object');
  }
  if (typeof task.op !== 'string') throw new Error('the payload has no "op" string');
  return task;
}

/**
 * `crash_once`: the first attempt creates the marker and dies at once
 * (SIGKILL: no DISCONNECT, no result); an attempt that finds it goes on.
 */
function crashOnce(marker) {
  if (typeof marker !== 'string' || marker === '') throw new Error('crash_once: "marker" is not a path');
  let fd;
  try {
    fd = openSync(marker, 'wx');
  } catch (err) {
    if (err.code === 'EEXIST') return;
    throw err;
  }
  closeSync(fd);
  process.kill(process.pid, 'SIGKILL');
}

/** The handler: does what the task's `op` says (README, "The worker runner"). */
async function serve(job, lang) {
  const task = parseTask(job.payload);
  switch (task.op) {
    case 'echo':
      return job.payload;
    case 'whoami':
      return JSON.stringify({ lang });
    case 'fail':
      throw new Error(String(task.error ?? ''));
    case 'sleep':
      if (!Number.isFinite(task.ms) || task.ms < 0) throw new Error('sleep: "ms" is not a number >= 0');
      // Rejects at once when the job's signal aborts; the library then ends the job cancelled.
      await delay(task.ms, undefined, { signal: job.signal });
      return job.payload;
    case 'crash_once':
      crashOnce(task.marker);
      return job.payload;
    case 'oversize':
      return Buffer.alloc(OVERSIZE_BYTES, 'x');
    default:
      throw new Error(`unknown op ${JSON.stringify(task.op)}`);
  }
}

async function runWorker(argv) {
  const { broker, service, capacity, lang } = requiredOptions(argv, ['broker', 'service', 'capacity', 'lang']);
  if (!/^[1-9][0-9]*$/.test(capacity)) throw new RunnerError(`--capacity ${capacity}: not a positive integer`);
  const worker = new Worker({ broker, capacity: Number(capacity), graceMs: STOP_GRACE_MS });
  let stopping = false;
  process.once('SIGTERM', () => {
    stopping = true;
    worker.stop();
  });
  try {
    await worker.handle(service, (job) => serve(job, lang));
  } catch (err) {
    // Stopped before the broker registered it: still a graceful stop.
    if (!stopping) throw err;
  }
}

// ---- the client runner ----

/** Reads standard input to its end and parses the program `{"steps": [...]}`. */
async function readProgram() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  let program;
  try {
    program = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new RunnerError(`the program is not JSON: ${err.message}`);
  }
  if (program === null || typeof program !== 'object' || !Array.isArray(program.steps)) {
    throw new RunnerError('the program is not an object with a "steps" array');
  }
  return program.steps;
}

function print(observation) {
  process.stdout.write(`${JSON.stringify(observation)}\n`);
}

/** A task's outcome as a `wait` observation shows it (without `step`, `task`, `order`). */
function outcomeOfResult(result) {
  return {
    status: result.status,
    payload: result.payload.toString('utf8'),
    error: '',
    attempts: result.attempts,
    cached: result.cached,
    retry_after_ms: 0,
  };
}

function outcomeOfError(err) {
  const status = STATUS_OF.find(([ErrorClass]) => err instanceof ErrorClass)?.[1];
  if (status === undefined) throw err; // not an outcome: a fault of the library or the runner
  const { result } = err;
  return {
    status,
    payload: result ? result.payload.toString('utf8') : '',
    error: err.message,
    attempts: result ? result.attempts : 0,
    cached: result ? result.cached : false,
    retry_after_ms: err.retryAfterMs ?? 0,
  };
}

/** One program run by one client: its tasks, subscriptions and the order outcomes arrived in. */
class Program {
  #client;
  /** as -> { handle, outcome, done } */
  #tasks = new Map();
  /** as -> { iterator, pending } */
  #subscriptions = new Map();
  #arrivals = 0;

  constructor(client) {
    this.#client = client;
  }

  async run(steps) {
    for (const [i, step] of steps.entries()) {
      if (step === null || typeof step !== 'object') throw new RunnerError(`step ${i}: not an object`);
      const action = Program.#actions[step.do];
      if (!action) throw new RunnerError(`step ${i}: unknown step ${JSON.stringify(step.do)}`);
      try {
        await action.call(this, step, i);
      } catch (err) {
        if (err instanceof RunnerError) err.message = `step ${i} (${step.do}): ${err.message}`;
        throw err;
      }
    }
  }

  static #actions = {
    __proto__: null,
    submit: Program.prototype.submit,
    wait: Program.prototype.wait,
    cancel: Program.prototype.cancel,
    sleep: Program.prototype.sleep,
    subscribe: Program.prototype.subscribe,
    publish: Program.prototype.publish,
    next_event: Program.prototype.nextEvent,
  };

  submit(step) {
    const name = field(step, 'as', 'string');
    if (this.#tasks.has(name)) throw new RunnerError(`task ${JSON.stringify(name)} was submitted before`);
    const service = field(step, 'service', 'string');
    const payload = field(step, 'payload', 'string');
    const handle = this.#client.submit(service, payload, taskOptions(step));
    const task = { handle, outcome: null };
    const record = (outcome) => {
      outcome.order = ++this.#arrivals;
      task.outcome = outcome;
      return outcome;
    };
    task.done = handle.promise.then(
      (result) => record(outcomeOfResult(result)),
      (err) => record(outcomeOfError(err)),
    );
    task.done.catch(() => {}); // a failure that is no outcome is thrown by the task's `wait`
    this.#tasks.set(name, task);
  }

  async wait(step, i) {
    const name = field(step, 'task', 'string');
    const ms = field(step, 'timeout_ms', 'integer');
    const task = this.#task(name);
    const outcome = task.outcome ?? (await within(task.done, ms));
    if (outcome === TIMED_OUT) print({ step: i, task: name, status: 'no_outcome' });
    else print({ step: i, task: name, ...outcome });
  }

  cancel(step) {
    this.#task(field(step, 'task', 'string')).handle.cancel();
  }

  async sleep(step) {
    await delay(field(step, 'ms', 'integer'));
  }

  async subscribe(step) {
    const name = field(step, 'as', 'string');
    const prefixes = field(step, 'prefixes', 'strings');
    if (this.#subscriptions.has(name)) throw new RunnerError(`subscription ${JSON.stringify(name)} exists`);
    let subscription;
    try {
      subscription = await this.#client.subscribe(prefixes);
    } catch (err) {
      throw new RunnerError(`subscribe failed: ${err.message}`);
    }
    this.#subscriptions.set(name, { iterator: subscription[Symbol.asyncIterator](), pending: null });
  }

  async publish(step, i) {
    const type = field(step, 'type', 'string');
    const payload = field(step, 'payload', 'string');
    try {
      await this.#client.publish(type, payload, { confirm: true });
      print({ step: i, published: true });
    } catch (err) {
      if (!(err instanceof YardError)) throw err;
      print({ step: i, published: false, error: err.message });
    }
  }

  async nextEvent(step, i) {
    const name = field(step, 'sub', 'string');
    const ms = field(step, 'timeout_ms', 'integer');
    const subscription = this.#subscriptions.get(name);
    if (!subscription) throw new RunnerError(`no subscription ${JSON.stringify(name)}`);
    // A next() that timed out is still owed the next event: the next step awaits it again.
    subscription.pending ??= subscription.iterator.next();
    let next;
    try {
      next = await within(subscription.pending, ms);
    } catch (err) {
      throw new RunnerError(`the subscription failed: ${err.message}`);
    }
    if (next !== TIMED_OUT) subscription.pending = null;
    if (next === TIMED_OUT || next.done) {
      print({ step: i, sub: name, type: null });
      return;
    }
    const { type, payload } = next.value;
    print({ step: i, sub: name, type, payload: typeof payload === 'string' ? payload : null });
  }

  #task(name) {
    const task = this.#tasks.get(name);
    if (!task) throw new RunnerError(`no task ${JSON.stringify(name)} was submitted`);
    return task;
  }
}

/** type -> [what it is called, its test] */
const FIELD_TYPES = {
  string: ['a string', (v) => typeof v === 'string'],
  integer: ['an integer', Number.isInteger],
  strings: ['a list of strings', (v) => Array.isArray(v) && v.every((s) => typeof s === 'string')],
};

/** step[key], which must be of `type` (`optional`: or absent). */
function field(step, key, type, { optional = false } = {}) {
  const value = step[key];
  if (value === undefined && optional) return undefined;
  const [called, test] = FIELD_TYPES[type];
  if (!test(value)) throw new RunnerError(`"${key}" is not ${called}`);
  return value;
}

/** The library's task options from a submit step's options. */
function taskOptions(step) {
  const options = {
    timeoutMs: field(step, 'timeout_ms', 'integer', { optional: true }),
    retries: field(step, 'retries', 'integer', { optional: true }),
    backoffMs: field(step, 'backoff_ms', 'integer', { optional: true }),
    priority: field(step, 'priority', 'integer', { optional: true }),
  };
  if (step.cache === true) {
    options.cache = true;
  } else if (step.cache !== undefined) {
    if (step.cache === null || typeof step.cache !== 'object' || Array.isArray(step.cache)) {
      throw new RunnerError('"cache" is not true or an object');
    }
    options.cache = {
      ttlMs: field(step.cache, 'ttl_ms', 'integer', { optional: true }),
      tags: field(step.cache, 'tags', 'strings', { optional: true }),
      key: field(step.cache, 'key', 'strings', { optional: true }),
      exclude: field(step.cache, 'exclude', 'strings', { optional: true }),
    };
  }
  return options;
}

async function runClient(argv) {
  const { broker, events } = requiredOptions(argv, ['broker', 'events']);
  const steps = await readProgram();
  const client = new Client({ broker, events });
  try {
    await new Program(client).run(steps);
  } finally {
    await client.close(); // ends outstanding tasks and subscriptions, so the process exits
  }
}

// ---- main ----

const MODES = { worker: runWorker, client: runClient };
const [mode, ...argv] = process.argv.slice(2);

try {
  if (!Object.hasOwn(MODES, mode)) throw new RunnerError('usage: runner.js worker|client --option value ...');
  await MODES[mode](argv);
} catch (err) {
  const who = mode === undefined ? 'runner.js' : `runner.js ${mode}`;
  process.stderr.write(`${who}: ${err instanceof RunnerError ? err.message : err.stack}\n`);
  process.exitCode = 1;
}
