// YARD/1 framing and bodies (PROTOCOL.md 4, 5, 7): header frames, the
// field table of every command and direction, canonical encoding (E1..E5)
// and checked decoding (D1..D14).
//
// A decoded body is a plain object holding the keys present on the wire
// (defaults are not filled in; `false` booleans read as absent, D13):
//   str fields     string (an `id` that is not UTF-8 stays a Buffer)
//   payload        Buffer (bin or str on the wire)
//   numbers        number, or bigint above 2^53-1
//   headers, meta  array of [key, value] string pairs, in wire order
//   cache, objects, event payload   Buffer holding the raw msgpack value
// Encoders take the same shapes (text fields as string or bytes).

import { WireError } from './errors.js';
import { parse, Writer } from './msgpack.js';

export const DEFAULT_BROKER = 'tcp://127.0.0.1:5555';
export const DEFAULT_EVENTS = 'tcp://127.0.0.1:5556';
export const MAX_BATCH = 256;
export const MAX_MSGSIZE = 16 * 1024 * 1024;
export const MAX_BODY = 4 * 1024 * 1024 + 64 * 1024;
export const MAX_PAYLOAD = 4 * 1024 * 1024;
export const MAX_EVENT_PAYLOAD = 1024 * 1024;
export const HEARTBEAT_INTERVAL_MS = 1000;
export const HEARTBEAT_LIVENESS = 3;
export const GIVE_UP_SLACK_MS = 2000;
export const DEFAULT_TIMEOUT_MS = 30000;

const U32 = 0xffff_ffff;
const U64 = 2n ** 64n - 1n;

const ROLES = { 0x43: 'C', 0x57: 'W', 0x42: 'B' };
const ROLE_BYTES = { C: 0x43, W: 0x57, B: 0x42 };

const COMMANDS = {
  SUBMIT: 0x01,
  RESULT: 0x02,
  CANCEL: 0x03,
  READY: 0x04,
  TASK: 0x05,
  HEARTBEAT: 0x06,
  DISCONNECT: 0x07,
  ERROR: 0x08,
  PUBLISH: 0x10,
  PUBLISH_ACK: 0x11,
  SUBSCRIBE: 0x12,
};
const COMMAND_NAMES = Object.fromEntries(Object.entries(COMMANDS).map(([name, code]) => [code, name]));

/** The commands each role may send (PROTOCOL.md 5.1). */
const VALID = {
  C: new Set(['SUBMIT', 'CANCEL', 'HEARTBEAT', 'DISCONNECT', 'PUBLISH', 'SUBSCRIBE']),
  W: new Set(['READY', 'RESULT', 'HEARTBEAT', 'DISCONNECT', 'PUBLISH']),
  B: new Set(['RESULT', 'TASK', 'CANCEL', 'HEARTBEAT', 'DISCONNECT', 'ERROR', 'PUBLISH', 'PUBLISH_ACK']),
};

function bodyCount(role, command) {
  switch (command) {
    case 'READY':
    case 'ERROR':
    case 'SUBSCRIBE':
      return [1, 1];
    case 'HEARTBEAT':
      return role === 'C' ? [0, 0] : [0, 1];
    case 'DISCONNECT':
      return [0, 1];
    default:
      return [1, MAX_BATCH];
  }
}

// ---------------------------------------------------------------- field kinds

const utf8 = new TextDecoder('utf-8', { fatal: true });

const fail = (code, detail) => {
  throw new WireError(code, detail);
};
const typeError = (key, expected) => fail('YARD_E_TYPE', `${key} is not ${expected}`);

function isAlphabet(bytes) {
  for (const b of bytes) {
    const ok =
      (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) ||
      b === 0x2e || b === 0x5f || b === 0x3a || b === 0x2d;
    if (!ok) return false;
  }
  return true;
}

function toBytes(value, key) {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return value;
  return typeError(key, 'a string or bytes');
}

function decodeUtf8(bytes, key) {
  try {
    return utf8.decode(bytes);
  } catch {
    return typeError(key, 'valid UTF-8');
  }
}

/**
 * A str field. `min`/`max` bound its byte length; a breach is `over`
 * (YARD_E_RANGE, or YARD_E_TOO_LARGE for size limits, D12). `alphabet`
 * restricts it to [A-Za-z0-9._:-]; `anyBytes` lifts D9 (task ids are
 * bytes of any value, proto/vectors/README.md).
 */
function text({ min = 0, max, over = 'YARD_E_RANGE', alphabet = false, anyBytes = false }) {
  const check = (bytes, key) => {
    if (bytes.length < min || bytes.length > max) fail(bytes.length > max ? over : 'YARD_E_RANGE', `${key} length out of range ${min}..${max}`);
    if (alphabet && !isAlphabet(bytes)) fail('YARD_E_RANGE', `${key} has characters outside [A-Za-z0-9._:-]`);
  };
  return {
    decode(node, key) {
      if (node.type !== 'str') typeError(key, 'a str');
      check(node.data, key);
      if (!anyBytes) return decodeUtf8(node.data, key);
      try {
        return utf8.decode(node.data);
      } catch {
        return Buffer.from(node.data);
      }
    },
    encode(w, value, key) {
      const bytes = toBytes(value, key);
      check(bytes, key);
      w.str(bytes);
    },
    isDefault: (value) => value.length === 0,
  };
}

function payload(max) {
  return {
    decode(node, key) {
      if (node.type !== 'bin' && node.type !== 'str') typeError(key, 'bin or str');
      if (node.data.length > max) fail('YARD_E_TOO_LARGE', `${key} over ${max} bytes`);
      return node.data;
    },
    encode(w, value, key) {
      const bytes = toBytes(value, key);
      if (bytes.length > max) fail('YARD_E_TOO_LARGE', `${key} over ${max} bytes`);
      w.bin(bytes);
    },
    isDefault: () => false, // a present payload is written, even empty
  };
}

function checkUint(value, key, min, max, def) {
  if (value < 0) fail('YARD_E_RANGE', `${key} is negative`);
  if (Number(value) !== def && (value < min || value > max)) fail('YARD_E_RANGE', `${key} out of range ${min}..${max}`);
}

/**
 * An unsigned integer field (D8). `def` is an optional field's default,
 * accepted even outside min..max since it means "absent" (D13).
 */
function uint({ min = 0, max = U64, def } = {}) {
  return {
    decode(node, key) {
      if (node.type !== 'int') typeError(key, 'an integer');
      checkUint(node.value, key, min, max, def);
      return node.value;
    },
    encode(w, value, key) {
      const ok = typeof value === 'bigint' || Number.isSafeInteger(value);
      if (!ok) typeError(key, 'an integer');
      checkUint(value, key, min, max, def);
      w.uint(value);
    },
    isDefault: (value) => Number(value) === def,
  };
}

const bool = {
  decode(node, key) {
    if (node.type !== 'bool') typeError(key, 'a bool');
    return node.value;
  },
  encode(w, value, key) {
    if (typeof value !== 'boolean') typeError(key, 'a bool');
    w.bool(value);
  },
  isDefault: (value) => value === false,
};

/** A closed set of status strings (6.1): anything else is out of range. */
function status(allowed) {
  const check = (value, key) => {
    if (!allowed.includes(value)) fail('YARD_E_RANGE', `${key} '${value}' is not one of ${allowed.join(', ')}`);
  };
  return {
    decode(node, key) {
      if (node.type !== 'str') typeError(key, 'a str');
      const value = decodeUtf8(node.data, key);
      check(value, key);
      return value;
    },
    encode(w, value, key) {
      check(value, key);
      w.str(value);
    },
    isDefault: () => false,
  };
}

/** `headers` and an event's `meta`: a map of str to str (5.2, D2, D5). */
const headers = {
  decode(node, key) {
    if (node.type !== 'map') typeError(key, 'a map');
    if (node.entries.length > 32) fail('YARD_E_TOO_LARGE', `${key} has more than 32 entries`);
    const seen = new Set();
    return node.entries.map(([k, v]) => {
      if (k.type !== 'str') fail('YARD_E_MALFORMED', `a ${key} key is not a str`);
      if (v.type !== 'str') typeError(`${key} value`, 'a str');
      const name = decodeUtf8(k.data, `${key} key`);
      checkHeader(key, k.data.length, v.data.length);
      if (seen.has(name)) fail('YARD_E_MALFORMED', `${key} key '${name}' appears twice`);
      seen.add(name);
      return [name, decodeUtf8(v.data, `${key} value`)];
    });
  },
  encode(w, pairs, key) {
    if (pairs.length > 32) fail('YARD_E_TOO_LARGE', `${key} has more than 32 entries`);
    const seen = new Set();
    const encoded = pairs.map(([k, v]) => {
      if (typeof k !== 'string' || typeof v !== 'string') typeError(key, 'a map of strings to strings');
      if (seen.has(k)) fail('YARD_E_MALFORMED', `${key} key '${k}' appears twice`);
      seen.add(k);
      const kb = Buffer.from(k, 'utf8');
      const vb = Buffer.from(v, 'utf8');
      checkHeader(key, kb.length, vb.length);
      return [kb, vb];
    });
    w.map(encoded.length);
    for (const [kb, vb] of encoded) w.str(kb).str(vb);
  },
  isDefault: (pairs) => pairs.length === 0,
};

function checkHeader(key, keyLength, valueLength) {
  if (keyLength < 1 || keyLength > 64) fail('YARD_E_TOO_LARGE', `${key} key length out of range 1..64`);
  if (valueLength > 1024) fail('YARD_E_TOO_LARGE', `${key} value over 1024 bytes`);
}

/** A field carried as its raw msgpack bytes; `check` validates the parsed value. */
function raw(check) {
  return {
    decode(node, key, frame) {
      check(node, key);
      return frame.subarray(node.start, node.end);
    },
    encode(w, bytes, key) {
      if (!(bytes instanceof Uint8Array)) typeError(key, 'raw msgpack bytes');
      check(parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)), key);
      w.raw(bytes);
    },
    isDefault: () => false,
  };
}

/** SUBMIT `cache`: any map; its content is the broker's business (10b). */
const cacheMap = raw((node, key) => {
  if (node.type !== 'map') typeError(key, 'a map');
});

/** A report's `objects`: map of name to uint, at most 16 (5.7). */
const objects = raw((node, key) => {
  if (node.type !== 'map') typeError(key, 'a map');
  if (node.entries.length > 16) fail('YARD_E_TOO_LARGE', `${key} has more than 16 entries`);
  const seen = new Set();
  for (const [k, v] of node.entries) {
    if (k.type !== 'str') fail('YARD_E_MALFORMED', `an ${key} name is not a str`);
    if (k.data.length < 1 || k.data.length > 64 || !isAlphabet(k.data)) {
      fail('YARD_E_RANGE', `an ${key} name is not 1..64 bytes of [A-Za-z0-9._:-]`);
    }
    const name = k.data.toString('latin1');
    if (seen.has(name)) fail('YARD_E_MALFORMED', `${key} name '${name}' appears twice`);
    seen.add(name);
    uint().decode(v, `${key}.${name}`);
  }
});

/** An event `payload`: one msgpack value of any type, at most 1 MiB. */
const anyValue = raw((node, key) => {
  if (node.end - node.start > MAX_EVENT_PAYLOAD) fail('YARD_E_TOO_LARGE', `${key} over ${MAX_EVENT_PAYLOAD} bytes`);
});

/** SUBSCRIBE `types`: 0..32 prefixes of 0..128 bytes of the service alphabet. */
const types = {
  decode(node, key) {
    if (node.type !== 'array') typeError(key, 'an array');
    if (node.items.length > 32) fail('YARD_E_TOO_LARGE', `${key} has more than 32 prefixes`);
    return node.items.map((item) => {
      if (item.type !== 'str') typeError(`${key} item`, 'a str');
      checkPrefix(item.data, key);
      return item.data.toString('latin1');
    });
  },
  encode(w, prefixes, key) {
    if (!Array.isArray(prefixes)) typeError(key, 'an array');
    if (prefixes.length > 32) fail('YARD_E_TOO_LARGE', `${key} has more than 32 prefixes`);
    const encoded = prefixes.map((p) => {
      const bytes = toBytes(p, key);
      checkPrefix(bytes, key);
      return bytes;
    });
    w.array(encoded.length);
    for (const bytes of encoded) w.str(bytes);
  },
  isDefault: () => false,
};

function checkPrefix(bytes, key) {
  if (bytes.length > 128) fail('YARD_E_TOO_LARGE', `a ${key} prefix is over 128 bytes`);
  if (!isAlphabet(bytes)) fail('YARD_E_RANGE', `a ${key} prefix has characters outside [A-Za-z0-9._:-]`);
}

// ---------------------------------------------------------------- field tables

const ID = text({ min: 1, max: 128, anyBytes: true });
const SERVICE = text({ min: 1, max: 128, alphabet: true });
const LONG_TEXT = text({ max: 4096, over: 'YARD_E_TOO_LARGE' });
const MESSAGE = text({ min: 1, max: 4096, over: 'YARD_E_TOO_LARGE' });
const CODE = text({ min: 1, max: 64 });
const SHORT_TEXT = text({ max: 128 });
const JOB = uint({ min: 1 });
const U64_FIELD = uint({ def: 0 });
const U32_FIELD = uint({ max: U32, def: 0 });
const ALL_STATUSES = ['ok', 'error', 'timeout', 'rejected', 'circuit_open', 'cancelled', 'shutdown', 'invalid'];

const req = (key, kind) => ({ key, kind, required: true });
const opt = (key, kind) => ({ key, kind, required: false });

const RESULT_FIELDS = {
  job: req('job', JOB),
  id: req('id', ID),
  payload: opt('payload', payload(MAX_PAYLOAD)),
  error: opt('error', LONG_TEXT),
  cached: opt('cached', bool),
  attempts: opt('attempts', U32_FIELD),
  queue_us: opt('queue_us', U64_FIELD),
  run_us: opt('run_us', U64_FIELD),
  total_us: opt('total_us', U64_FIELD),
  retry_after_ms: opt('retry_after_ms', U32_FIELD),
};
const R = RESULT_FIELDS;

const EVENT_HEAD = [
  req('type', SERVICE),
  opt('source', SHORT_TEXT),
  opt('ts_us', U64_FIELD),
  opt('payload', anyValue),
  opt('trace_id', SHORT_TEXT),
  opt('meta', headers),
];
const SEQ = opt('seq', U64_FIELD);
const ACK = opt('ack', bool);
const SN = req('sn', JOB);

const REPORT_FIGURES = [
  'rss', 'rss_peak', 'rss_growth', 'growth_window_ms', 'loop_iterations', 'loop_busy_us', 'loop_max_us',
  'loop_max_lag_us', 'loop_slow', 'loop_stalls', 'loop_last_stall_us', 'loop_stall_age_ms',
  'loop_slow_ms', 'loop_stall_ms',
];

const DISCONNECT = { fields: [req('code', CODE), req('message', MESSAGE)] };

/**
 * Per "ROLE COMMAND": `fields` in canonical order (E1) and `foreign`, keys
 * defined for the command but not for this direction (type-checked, then
 * ignored, D14).
 */
const SCHEMAS = {
  'C SUBMIT': {
    fields: [
      req('id', ID),
      req('service', SERVICE),
      opt('payload', payload(MAX_PAYLOAD)),
      opt('timeout_ms', uint({ min: 1, max: 86_400_000, def: DEFAULT_TIMEOUT_MS })),
      opt('retries', uint({ max: 16, def: 0 })),
      opt('backoff_ms', uint({ max: 60_000, def: 100 })),
      opt('priority', uint({ max: 9, def: 0 })),
      opt('headers', headers),
      opt('cache', cacheMap),
      opt('fallback', SERVICE),
    ],
  },
  'W RESULT': {
    fields: [R.job, req('status', status(['ok', 'error', 'cancelled', 'invalid'])), R.payload, R.error, R.run_us],
    foreign: [R.id, R.cached, R.attempts, R.queue_us, R.total_us, R.retry_after_ms],
  },
  'B RESULT': {
    fields: [
      R.id, req('status', status(ALL_STATUSES)), R.payload, R.error, R.cached, R.attempts,
      R.queue_us, R.run_us, R.total_us, R.retry_after_ms,
    ],
    foreign: [R.job],
  },
  'C CANCEL': { fields: [req('id', ID)], foreign: [req('job', JOB)] },
  'B CANCEL': { fields: [req('job', JOB)], foreign: [req('id', ID)] },
  'W READY': {
    fields: [
      req('service', SERVICE),
      req('capacity', uint({ max: 10_000 })),
      opt('name', SHORT_TEXT),
      opt('pid', uint({ min: 1, max: U32, def: 0 })),
      opt('version', SHORT_TEXT),
    ],
  },
  'B TASK': {
    fields: [
      req('job', JOB),
      req('id', ID),
      req('service', SERVICE),
      opt('payload', payload(MAX_PAYLOAD)),
      req('timeout_ms', uint({ max: 86_400_000 })),
      req('attempt', uint({ min: 1, max: U32 })),
      opt('headers', headers),
    ],
  },
  'W HEARTBEAT': {
    fields: [
      opt('probe', U64_FIELD),
      opt('uptime_ms', U64_FIELD),
      opt('version', SHORT_TEXT),
      ...REPORT_FIGURES.map((key) => opt(key, U64_FIELD)),
      opt('in_flight', U32_FIELD),
      opt('pending', U32_FIELD),
      opt('objects', objects),
    ],
  },
  'B HEARTBEAT': { fields: [req('probe', JOB)] },
  'C DISCONNECT': DISCONNECT,
  'W DISCONNECT': DISCONNECT,
  'B DISCONNECT': DISCONNECT,
  'B ERROR': { fields: [req('code', CODE), req('message', MESSAGE), opt('id', ID)] },
  'C PUBLISH': { fields: [...EVENT_HEAD, SEQ, ACK], foreign: [SN], ackNeedsSeq: true },
  'W PUBLISH': { fields: [...EVENT_HEAD, SEQ, ACK], foreign: [SN], ackNeedsSeq: true },
  'B PUBLISH': { fields: [...EVENT_HEAD, SN], foreign: [SEQ, ACK] },
  'B PUBLISH_ACK': {
    fields: [req('seq', U64_FIELD), req('status', status(['ok', 'invalid'])), opt('error', LONG_TEXT)],
  },
  'C SUBSCRIBE': { fields: [req('types', types)] },
};

for (const schema of Object.values(SCHEMAS)) {
  schema.byKey = new Map(schema.fields.map((f) => [f.key, f]));
  schema.foreignByKey = new Map((schema.foreign ?? []).map((f) => [f.key, f]));
}

function schemaFor(role, command) {
  const schema = SCHEMAS[`${role} ${command}`];
  if (!schema) fail('YARD_E_FRAMES', `${command} from role ${role} has no body`);
  return schema;
}

function checkAckSeq(schema, body) {
  if (schema.ackNeedsSeq && body.ack === true && !(body.seq > 0)) fail('YARD_E_MISSING', 'ack without a seq above 0');
}

// ---------------------------------------------------------------- bodies

/**
 * Encodes one body of `command` sent by `role` canonically (E1..E4). Keys
 * not defined for that direction are not written; optional keys equal to
 * their default are left out. Throws WireError for a value that breaks a
 * rule.
 */
export function encodeBody(role, command, fields) {
  const schema = schemaFor(role, command);
  const present = schema.fields.filter(({ key, kind, required }) => {
    const value = fields[key];
    if (value === undefined) {
      if (required) fail('YARD_E_MISSING', `${key} is required`);
      return false;
    }
    return required || !kind.isDefault(value);
  });
  checkAckSeq(schema, fields);
  const w = new Writer().map(present.length);
  for (const { key, kind } of present) {
    w.str(key);
    kind.encode(w, fields[key], key);
  }
  const body = w.finish();
  if (body.length > MAX_BODY) fail('YARD_E_TOO_LARGE', `body over ${MAX_BODY} bytes`);
  parse(body); // depth and element limits hold for the body as a whole (D3)
  return body;
}

/** The `id` and `job` of a failing body when they can still be read (sections 8.2, 9). */
function readable(entries) {
  const found = {};
  const count = { id: 0, job: 0 };
  for (const [k, v] of entries) {
    const name = k.type === 'str' ? k.data.toString('latin1') : undefined;
    if (name !== 'id' && name !== 'job') continue;
    count[name] += 1;
    try {
      found[name] = (name === 'id' ? ID : JOB).decode(v, name);
    } catch {
      found[name] = undefined;
    }
  }
  return { id: count.id === 1 ? found.id : undefined, job: count.job === 1 ? found.job : undefined };
}

/**
 * Decodes one body frame of `command` sent by `role`. Throws WireError (with
 * `id`/`job` set when they were readable) for a body that breaks a rule.
 */
export function decodeBody(role, command, frame) {
  const schema = schemaFor(role, command);
  if (frame.length > MAX_BODY) fail('YARD_E_TOO_LARGE', `body frame over ${MAX_BODY} bytes`);
  const root = parse(frame);
  if (root.type !== 'map') fail('YARD_E_MALFORMED', 'the body is not a msgpack map');
  const { id, job } = readable(root.entries);
  try {
    return decodeEntries(schema, root.entries, frame);
  } catch (err) {
    if (err instanceof WireError) Object.assign(err, { id, job });
    throw err;
  }
}

function decodeEntries(schema, entries, frame) {
  const seen = new Set();
  for (const [k] of entries) {
    if (k.type !== 'str') fail('YARD_E_MALFORMED', 'a key is not a str');
    const key = k.data.toString('utf8');
    if (!schema.byKey.has(key) && !schema.foreignByKey.has(key)) continue;
    if (seen.has(key)) fail('YARD_E_MALFORMED', `key '${key}' appears twice`);
    seen.add(key);
  }
  const body = {};
  for (const [k, v] of entries) {
    const key = k.data.toString('utf8');
    const field = schema.byKey.get(key);
    if (field) {
      const value = field.kind.decode(v, key, frame);
      if (value !== false) body[key] = value;
      continue;
    }
    const foreign = schema.foreignByKey.get(key);
    if (foreign) checkForeignType(foreign, v, key, frame);
  }
  for (const { key, required } of schema.fields) {
    if (required && body[key] === undefined) fail('YARD_E_MISSING', `${key} is required`);
  }
  checkAckSeq(schema, body);
  return body;
}

/** D14: a key of the other direction is checked for type only. */
function checkForeignType(field, node, key, frame) {
  try {
    field.kind.decode(node, key, frame);
  } catch (err) {
    if (!(err instanceof WireError) || err.code === 'YARD_E_TYPE') throw err;
  }
}

// ---------------------------------------------------------------- messages

const headerCache = new Map();

/** The 4-byte header frame of a `command` sent by `role`. */
export function header(role, command) {
  const key = `${role} ${command}`;
  let frame = headerCache.get(key);
  if (!frame) {
    frame = Buffer.from([0x59, ROLE_BYTES[role], 0x01, COMMANDS[command]]);
    headerCache.set(key, frame);
  }
  return frame;
}

/** Encodes a whole message: the header frame, then one frame per body. */
export function encodeMessage(role, command, bodies = []) {
  const [min, max] = bodyCount(role, command);
  if (bodies.length < min || bodies.length > max) fail('YARD_E_FRAMES', `${command} takes ${min}..${max} bodies`);
  return [header(role, command), ...bodies.map((b) => encodeBody(role, command, b))];
}

/**
 * Decodes a message (its frames after any routing envelope). Throws
 * WireError when the message as a whole is refused (header, version, role,
 * command, body count, total size: section 9 rows 2..7). Otherwise returns
 * `{ role, command, bodies }` where each body is the decoded object or the
 * WireError it was refused with: bodies stand alone (4.3).
 */
export function decodeMessage(frames) {
  const [head, ...bodies] = frames;
  if (!head) fail('YARD_E_HEADER', 'no header frame');
  if (head.length !== 4 || head[0] !== 0x59) fail('YARD_E_HEADER', 'header is not 4 bytes starting with Y');
  const role = ROLES[head[1]];
  if (!role) fail('YARD_E_ROLE', `unknown role 0x${head[1].toString(16)}`);
  if (head[2] !== 0x01) fail('YARD_E_VERSION', `protocol version ${head[2]}, this peer speaks 1`);
  const command = COMMAND_NAMES[head[3]];
  if (!command || !VALID[role].has(command)) {
    fail('YARD_E_UNKNOWN_CMD', `command 0x${head[3].toString(16).padStart(2, '0')} is not valid for role ${role}`);
  }
  const [min, max] = bodyCount(role, command);
  if (bodies.length < min || bodies.length > max) fail('YARD_E_FRAMES', `${command} takes ${min}..${max} bodies, got ${bodies.length}`);
  const total = bodies.reduce((n, b) => n + b.length, 0);
  if (total > MAX_MSGSIZE) fail('YARD_E_TOO_LARGE', `bodies over ${MAX_MSGSIZE} bytes`);
  return {
    role,
    command,
    bodies: bodies.map((frame) => {
      try {
        return decodeBody(role, command, frame);
      } catch (err) {
        if (err instanceof WireError) return err;
        throw err;
      }
    }),
  };
}
