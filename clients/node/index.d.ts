// Types of the public API of yard-client (src/index.js).

/** Where the library reports discarded input, refusals and reconnections. */
export interface Logger {
  warn(message: string): void;
}

/** Task payload: bytes, or a string sent as UTF-8. */
export type Payload = Uint8Array | string;

/** Headers: a plain object, a Map, or [key, value] pairs, kept in the order given. */
export type Headers = Record<string, string> | Map<string, string> | Iterable<readonly [string, string]>;

/** Wire statuses of a RESULT (PROTOCOL.md 6.1). */
export type Status = 'ok' | 'error' | 'timeout' | 'rejected' | 'circuit_open' | 'cancelled' | 'shutdown' | 'invalid';

/** Response-cache policy of a task (PROTOCOL.md 10b). `true` caches with the cache's defaults. */
export interface CachePolicy {
  /** How long the result is kept; 0 or absent: the cache's default. */
  ttlMs?: number;
  /** Tags for invalidation, up to 16. */
  tags?: string[];
  /** The payload is a msgpack map and only these fields make up the key (up to 32). */
  key?: string[];
  /** The payload is a msgpack map and every field but these makes up the key (up to 32). */
  exclude?: string[];
  /** Headers whose values make up the key too (up to 32). */
  headers?: string[];
}

export interface CallOptions {
  /** Task id, unique among this client's outstanding tasks (1..128 bytes); generated when absent. */
  id?: string;
  /** Deadline of the whole task, from acceptance (1..86400000, default 30000). */
  timeoutMs?: number;
  /** Extra attempts after a handler error (0..16, default 0). */
  retries?: number;
  /** Base delay before a retry, doubled each time (0..60000, default 100). */
  backoffMs?: number;
  /** 0..9, 9 served first (default 0). */
  priority?: number;
  /** Metadata passed to the worker unchanged; `trace_id` should carry a trace id. */
  headers?: Headers;
  /** Cache the successful result and reuse it for the same request. */
  cache?: CachePolicy | boolean;
  /** Service to run the task instead when this service's circuit breaker is open. */
  fallback?: string;
  /** Aborting it cancels the task. */
  signal?: AbortSignal;
}

export type BatchOptions = Omit<CallOptions, 'id'>;

export interface MapOptions extends BatchOptions {
  /** Tasks kept outstanding at once (default 64). */
  window?: number;
}

/** The outcome of a task. */
export class Result {
  readonly id: string;
  readonly status: Status;
  /** The final attempt's payload (empty when none). */
  readonly payload: Buffer;
  /** Dispatches made to workers (0: never dispatched, or answered from the cache). */
  readonly attempts: number;
  readonly queueUs: number;
  readonly runUs: number;
  readonly totalUs: number;
  /** Answered from the response cache. */
  readonly cached: boolean;
}

export interface TaskHandle {
  readonly id: string;
  /** Resolves with the Result, or rejects with the YardError of the task's status. */
  readonly promise: Promise<Result>;
  /** Asks the broker to cancel the task; the promise still settles once. */
  cancel(): void;
}

export interface PublishOptions {
  /** Who published it (0..128 bytes). */
  source?: string;
  /** Wall-clock time in microseconds since the epoch; absent: the broker stamps it. */
  tsUs?: number | bigint;
  /** Correlation id (0..128 bytes). */
  traceId?: string;
  /** Free string metadata (as headers). */
  meta?: Headers;
  /** Wait for the broker's PUBLISH_ACK. */
  confirm?: boolean;
  /** With confirm: how long to wait for the acknowledgement (default 5000). */
  timeoutMs?: number;
}

export interface SubscribeOptions {
  /** Events held for a slow consumer; beyond it they are dropped and counted in `missed` (default 10000). */
  maxQueued?: number;
  /** How long subscribe waits for the broker's acknowledgement (default 5000). */
  startTimeoutMs?: number;
}

/** One event delivered to a subscriber. */
export interface YardEvent {
  readonly type: string;
  /** Who published it ('' when not said; the broker's own events say 'yard-broker'). */
  readonly source: string;
  /** Microseconds since the epoch. */
  readonly tsUs: number;
  /** The payload decoded with @msgpack/msgpack; undefined when absent or not representable. */
  readonly payload: unknown;
  /** The payload's msgpack bytes, as published. */
  readonly rawPayload: Buffer | undefined;
  readonly traceId: string;
  readonly meta: Record<string, string>;
  /** This subscriber's delivery number. */
  readonly sn: number;
}

/** An event subscription; iterate it with `for await`, leaving the loop closes it. */
export class Subscription implements AsyncIterable<YardEvent> {
  /** Events missed: gaps in `sn`, a renumbering by a restarted broker, local overflow. */
  readonly missed: number;
  /** Settles once the subscription is closed. */
  readonly closed: Promise<void>;
  [Symbol.asyncIterator](): AsyncGenerator<YardEvent, void, undefined>;
  /** Sends DISCONNECT and ends the iteration. */
  close(): Promise<void>;
}

export interface ClientOptions {
  /** The broker's tasks endpoint (default tcp://127.0.0.1:5555). */
  broker?: string;
  /** The broker's events endpoint, for subscribe (default tcp://127.0.0.1:5556). */
  events?: string;
  /** Default: console. */
  logger?: Logger;
}

/** The broker's `ping` answer (PROTOCOL.md 10). */
export interface PingAnswer {
  probe: number;
  probed: number;
  answered: number;
  complete: boolean;
  elapsed_us: number;
  workers: Array<{
    id: string;
    service: string;
    name: string;
    pid: number;
    answered: boolean;
    rtt_us: number | null;
  }>;
}

export class Client {
  constructor(options?: ClientOptions);
  /** Runs one task; rejects with the YardError of a non-ok status. */
  call(service: string, payload?: Payload, options?: CallOptions): Promise<Result>;
  /** Submits one task and returns at once. */
  submit(service: string, payload?: Payload, options?: CallOptions): TaskHandle;
  /** One task per payload, in SUBMITs of up to 256 bodies; each entry is the task's Result or its error. */
  batch(service: string, payloads: Iterable<Payload>, options?: BatchOptions): Promise<Array<Result | YardError>>;
  /** Results in input order with up to `window` tasks outstanding; a failure is thrown, stopping cancels the rest. */
  map(service: string, payloads: Iterable<Payload> | AsyncIterable<Payload>, options?: MapOptions): AsyncGenerator<Result, void, undefined>;
  /** Asks the broker to cancel an outstanding task. */
  cancel(id: string): void;
  /** Publishes an event; `payload` is any msgpack-encodable value. */
  publish(type: string, payload?: unknown, options?: PublishOptions): Promise<void>;
  /** Subscribes to events whose type starts with one of `prefixes` (every event when empty). */
  subscribe(prefixes?: string[], options?: SubscribeOptions): Promise<Subscription>;
  /** The broker's metrics (admin `stats`): see PROTOCOL.md 10 for the schema. */
  stats(options?: { timeoutMs?: number }): Promise<Record<string, any>>;
  /** Probes every worker through the broker (admin `ping`, 1..10000 ms). */
  ping(timeoutMs?: number): Promise<PingAnswer>;
  /** Ends outstanding tasks with CancelledError, tells the broker, closes subscriptions. */
  close(): Promise<void>;
}

/** A task handed to a worker handler. */
export interface Job {
  /** The client's task id (for logs: not unique across clients). */
  readonly id: string;
  /** The broker's handle of this dispatch: a number, or a bigint beyond 2^53-1. */
  readonly job: number | bigint;
  readonly service: string;
  readonly payload: Buffer;
  /** Time left until the task's deadline when it was sent. */
  readonly timeoutMs: number;
  /** 1 on first dispatch, +1 on every re-dispatch. */
  readonly attempt: number;
  readonly headers: Record<string, string>;
  /** Aborted when the task is cancelled, times out, or the connection is lost. */
  readonly signal: AbortSignal;
}

/** Return bytes or a string (or nothing) for `ok`; throw for `error`; throw a Reject for `invalid`. */
export type Handler = (job: Job) => Payload | void | null | Promise<Payload | void | null>;

export interface WorkerOptions {
  /** The broker's tasks endpoint (default tcp://127.0.0.1:5555). */
  broker?: string;
  /** Tasks each service runs at once (default 8). */
  capacity?: number;
  /** Name shown in the broker's stats (default host-pid). */
  name?: string;
  /** Software version sent in READY and reports (default this package's). */
  version?: string;
  /** How long stop() waits for running handlers (default 10000). */
  graceMs?: number;
  /** Default: console. */
  logger?: Logger;
}

export class Worker {
  constructor(options?: WorkerOptions);
  /** Serves a service on its own connection; resolves once the broker registered it. */
  handle(service: string, handler: Handler, options?: { capacity?: number }): Promise<void>;
  /** Drains every service (READY capacity 0, running handlers finish), then leaves. */
  stop(): Promise<void>;
}

/** Base class of the errors tasks, publishes and subscriptions end with. */
export class YardError extends Error {
  constructor(message: string, details?: { status?: Status; id?: string; result?: Result; cause?: unknown });
  /** The wire status. */
  readonly status: Status | undefined;
  /** The task id, when the error concerns a task. */
  readonly id: string | undefined;
  /** The broker's RESULT, when there was one. */
  readonly result: Result | undefined;
}
export class TaskError extends YardError {}
export class TimeoutError extends YardError {}
/** No reply from the broker: given up timeout + 2000 ms after sending. */
export class BrokerUnreachableError extends TimeoutError {}
export class RejectedError extends YardError {
  readonly retryAfterMs: number;
}
export class CircuitOpenError extends YardError {
  readonly retryAfterMs: number;
}
export class CancelledError extends YardError {}
export class ShutdownError extends YardError {}
export class InvalidError extends YardError {}

/** Thrown by a handler to refuse the request itself (status `invalid`, no retry). */
export class Reject extends Error {
  constructor(message: string);
}

export type WireErrorCode =
  | 'YARD_E_HEADER'
  | 'YARD_E_ROLE'
  | 'YARD_E_VERSION'
  | 'YARD_E_UNKNOWN_CMD'
  | 'YARD_E_FRAMES'
  | 'YARD_E_MALFORMED'
  | 'YARD_E_TOO_LARGE'
  | 'YARD_E_TYPE'
  | 'YARD_E_RANGE'
  | 'YARD_E_MISSING';

/** A message or body that breaks the protocol. */
export class WireError extends Error {
  /** The error's C name, as in proto/vectors. */
  readonly code: WireErrorCode;
  /** The ERROR code (PROTOCOL.md 6.2): malformed, too_large, bad_version, unknown_command, bad_field, bad_frames. */
  readonly wireCode: string;
  readonly detail: string;
  /** The failing body's id, when it could still be read. */
  readonly id: string | Buffer | undefined;
  /** The failing body's job, when it could still be read. */
  readonly job: number | bigint | undefined;
}

// ---- the wire layer (PROTOCOL.md 4, 5) ----

export type Role = 'C' | 'W' | 'B';
export type Command =
  | 'SUBMIT'
  | 'RESULT'
  | 'CANCEL'
  | 'READY'
  | 'TASK'
  | 'HEARTBEAT'
  | 'DISCONNECT'
  | 'ERROR'
  | 'PUBLISH'
  | 'PUBLISH_ACK'
  | 'SUBSCRIBE';

/**
 * A body as keys present on the wire: str fields as strings (an `id` that is
 * not UTF-8 as a Buffer), payloads as Buffers, numbers as numbers (bigints
 * beyond 2^53-1), headers/meta as [key, value] pairs, `cache`, `objects`
 * and event payloads as raw msgpack Buffers.
 */
export type Body = Record<string, unknown>;

/** Encodes one body canonically (keys in table order, defaults left out, shortest forms). */
export function encodeBody(role: Role, command: Command, fields: Body): Buffer;
/** Decodes one body; throws WireError. */
export function decodeBody(role: Role, command: Command, frame: Buffer): Body;
/** Encodes a whole message: the 4-byte header and one frame per body. */
export function encodeMessage(role: Role, command: Command, bodies?: Body[]): Buffer[];
/** Decodes a message; throws WireError for the message, returns a WireError in place of each bad body. */
export function decodeMessage(frames: Buffer[]): { role: Role; command: Command; bodies: Array<Body | WireError> };
