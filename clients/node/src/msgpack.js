// The strict msgpack layer of YARD/1 (PROTOCOL.md 4.5, 11.2).
//
// Bodies need more than a general-purpose msgpack library offers: repeated
// keys must be seen (D5), `str` and `bin` told apart (D9, D10), values kept
// as their exact bytes (`cache`, `objects`, event payloads), uint64 decoded
// without loss, and hostile input bounded before anything is allocated.
// `parse` reads a frame into a tree of small nodes; `Writer` writes the
// shortest forms of rule E3.

import { WireError } from './errors.js';

const MAX_U32 = 0xffff_ffff;

/** Reads a uint64 as a number when it is a safe integer, else as a bigint. */
function toSafe(big) {
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/**
 * Parses `buf` as exactly one msgpack object, enforcing D1 (one object, no
 * trailing bytes), D3 (depth and element limits), D4 (every count fits in
 * the bytes left) and refusing the never-used byte 0xc1.
 *
 * Returns a node: `{ type, start, end, ... }` where `start`/`end` delimit
 * the node's bytes in `buf`. Scalars carry `value` (`int` values are a
 * number, or a bigint beyond 2^53-1; negative ints are kept for range
 * checks); `str`/`bin` carry `data` (a view of their bytes); `array` carries
 * `items`; `map` carries `entries` as `[keyNode, valueNode]` pairs.
 */
export function parse(buf, { maxDepth = 8, maxElements = 4096 } = {}) {
  let pos = 0;
  let elements = 0;

  const fail = (message) => {
    throw new WireError('YARD_E_MALFORMED', message);
  };
  const need = (n) => {
    if (n > buf.length - pos) fail('truncated msgpack');
  };
  const readUint = (size) => {
    need(size);
    let v;
    if (size === 1) v = buf[pos];
    else if (size === 2) v = buf.readUInt16BE(pos);
    else if (size === 4) v = buf.readUInt32BE(pos);
    else v = toSafe(buf.readBigUInt64BE(pos));
    pos += size;
    return v;
  };
  const readInt = (size) => {
    need(size);
    let v;
    if (size === 1) v = buf.readInt8(pos);
    else if (size === 2) v = buf.readInt16BE(pos);
    else if (size === 4) v = buf.readInt32BE(pos);
    else {
      const big = buf.readBigInt64BE(pos);
      v = big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    pos += size;
    return v;
  };
  const blob = (type, start, n) => {
    // D4: the count must fit in what remains.
    if (n > buf.length - pos) fail(`${type} of ${n} bytes overruns the frame`);
    const data = buf.subarray(pos, pos + n);
    pos += n;
    return { type, start, end: pos, data };
  };
  const container = (type, start, n, depth) => {
    const slots = type === 'map' ? 2 * n : n;
    if (slots > buf.length - pos) fail(`${type} of ${n} entries overruns the frame`);
    if (depth > maxDepth) throw new WireError('YARD_E_TOO_LARGE', `nesting deeper than ${maxDepth}`);
    elements += slots;
    if (elements > maxElements) throw new WireError('YARD_E_TOO_LARGE', `more than ${maxElements} elements`);
    if (type === 'array') {
      const items = [];
      for (let i = 0; i < n; i++) items.push(value(depth));
      return { type, start, end: pos, items };
    }
    const entries = [];
    for (let i = 0; i < n; i++) entries.push([value(depth), value(depth)]);
    return { type, start, end: pos, entries };
  };
  const ext = (start, n) => {
    need(1);
    pos += 1; // the ext type byte
    return blob('ext', start, n);
  };

  function value(parentDepth) {
    const start = pos;
    need(1);
    const b = buf[pos++];
    const depth = parentDepth + 1;
    const scalar = (type, v) => ({ type, start, end: pos, value: v });
    if (b <= 0x7f) return scalar('int', b);
    if (b <= 0x8f) return container('map', start, b & 0x0f, depth);
    if (b <= 0x9f) return container('array', start, b & 0x0f, depth);
    if (b <= 0xbf) return blob('str', start, b & 0x1f);
    if (b >= 0xe0) return scalar('int', b - 0x100);
    switch (b) {
      case 0xc0: return scalar('nil', null);
      case 0xc1: return fail('byte 0xc1 is never valid msgpack');
      case 0xc2: return scalar('bool', false);
      case 0xc3: return scalar('bool', true);
      case 0xc4: return blob('bin', start, readUint(1));
      case 0xc5: return blob('bin', start, readUint(2));
      case 0xc6: return blob('bin', start, readUint(4));
      case 0xc7: return ext(start, readUint(1));
      case 0xc8: return ext(start, readUint(2));
      case 0xc9: return ext(start, readUint(4));
      case 0xca: need(4); pos += 4; return scalar('float', buf.readFloatBE(pos - 4));
      case 0xcb: need(8); pos += 8; return scalar('float', buf.readDoubleBE(pos - 8));
      case 0xcc: return scalar('int', readUint(1));
      case 0xcd: return scalar('int', readUint(2));
      case 0xce: return scalar('int', readUint(4));
      case 0xcf: return scalar('int', readUint(8));
      case 0xd0: return scalar('int', readInt(1));
      case 0xd1: return scalar('int', readInt(2));
      case 0xd2: return scalar('int', readInt(4));
      case 0xd3: return scalar('int', readInt(8));
      case 0xd4: return ext(start, 1);
      case 0xd5: return ext(start, 2);
      case 0xd6: return ext(start, 4);
      case 0xd7: return ext(start, 8);
      case 0xd8: return ext(start, 16);
      case 0xd9: return blob('str', start, readUint(1));
      case 0xda: return blob('str', start, readUint(2));
      case 0xdb: return blob('str', start, readUint(4));
      case 0xdc: return container('array', start, readUint(2), depth);
      case 0xdd: return container('array', start, readUint(4), depth);
      case 0xde: return container('map', start, readUint(2), depth);
      default: return container('map', start, readUint(4), depth); // 0xdf
    }
  }

  if (buf.length === 0) fail('empty frame');
  const root = value(0);
  if (pos !== buf.length) fail(`${buf.length - pos} trailing bytes after the msgpack object`);
  return root;
}

/** Writes msgpack in the shortest forms (rule E3) into a growing buffer. */
export class Writer {
  #buf = Buffer.allocUnsafe(128);
  #len = 0;

  #reserve(n) {
    if (this.#len + n <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(grown, 0, 0, this.#len);
    this.#buf = grown;
  }

  #byte(b) {
    this.#reserve(1);
    this.#buf[this.#len++] = b;
    return this;
  }

  /** A format byte followed by an unsigned big-endian number of `size` bytes. */
  #head(code, size, n) {
    this.#reserve(1 + size);
    this.#buf[this.#len++] = code;
    if (size === 1) this.#buf[this.#len] = n;
    else if (size === 2) this.#buf.writeUInt16BE(n, this.#len);
    else this.#buf.writeUInt32BE(n, this.#len);
    this.#len += size;
    return this;
  }

  map(n) {
    if (n <= 15) return this.#byte(0x80 | n);
    return n <= 0xffff ? this.#head(0xde, 2, n) : this.#head(0xdf, 4, n);
  }

  array(n) {
    if (n <= 15) return this.#byte(0x90 | n);
    return n <= 0xffff ? this.#head(0xdc, 2, n) : this.#head(0xdd, 4, n);
  }

  /** A non-negative integer given as a safe number or a bigint. */
  uint(v) {
    if (typeof v === 'bigint' && v <= BigInt(MAX_U32)) v = Number(v);
    if (typeof v === 'bigint') {
      this.#reserve(9);
      this.#buf[this.#len++] = 0xcf;
      this.#buf.writeBigUInt64BE(v, this.#len);
      this.#len += 8;
      return this;
    }
    if (v <= 0x7f) return this.#byte(v);
    if (v <= 0xff) return this.#head(0xcc, 1, v);
    if (v <= 0xffff) return this.#head(0xcd, 2, v);
    if (v <= MAX_U32) return this.#head(0xce, 4, v);
    return this.uint(BigInt(v));
  }

  /** A str from a JS string (written as UTF-8) or from raw bytes. */
  str(s) {
    const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    const n = bytes.length;
    if (n <= 31) this.#byte(0xa0 | n);
    else if (n <= 0xff) this.#head(0xd9, 1, n);
    else if (n <= 0xffff) this.#head(0xda, 2, n);
    else this.#head(0xdb, 4, n);
    return this.raw(bytes);
  }

  bin(bytes) {
    const n = bytes.length;
    if (n <= 0xff) this.#head(0xc4, 1, n);
    else if (n <= 0xffff) this.#head(0xc5, 2, n);
    else this.#head(0xc6, 4, n);
    return this.raw(bytes);
  }

  bool(b) {
    return this.#byte(b ? 0xc3 : 0xc2);
  }

  /** Bytes that already are msgpack, copied as they are. */
  raw(bytes) {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
    return this;
  }

  finish() {
    return Buffer.from(this.#buf.subarray(0, this.#len));
  }
}
