// Every vector of proto/vectors: valid ones decode to their bodies and
// (unless decode_only) re-encode byte-exact; invalid ones are refused with
// the stated error (proto/vectors/README.md).
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

import { WireError } from '../src/errors.js';
import { decodeMessage, encodeMessage } from '../src/wire.js';

const dir = new URL('../../../proto/vectors/', import.meta.url);
const vectors = readdirSync(dir)
  .filter((name) => name.endsWith('.json'))
  .map((name) => JSON.parse(readFileSync(new URL(name, dir), 'utf8')));

/** A vector's field value in this library's shapes ({utf8}/{hex} become bytes). */
function fromVector(value) {
  if (Array.isArray(value)) return value.map(fromVector);
  if (value !== null && typeof value === 'object') {
    if ('utf8' in value) return Buffer.from(value.utf8, 'utf8');
    if ('hex' in value) return Buffer.from(value.hex, 'hex');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromVector(v)]));
  }
  return value;
}

/** Strings and byte views as Buffers, so that text read back compares with vector bytes. */
function comparable(value) {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value)) return value.map(comparable);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, comparable(v)]));
  }
  return value;
}

const frames = (v) => v.frames.map((hex) => Buffer.from(hex, 'hex'));

test('the vector set covers every command in every direction', () => {
  const have = new Set(vectors.filter((v) => !v.name.startsWith('invalid_')).map((v) => `${v.role} ${v.command}`));
  for (const pair of ['C SUBMIT', 'B RESULT', 'W RESULT', 'C CANCEL', 'B CANCEL', 'W READY', 'B TASK', 'C HEARTBEAT',
    'W HEARTBEAT', 'B HEARTBEAT', 'C DISCONNECT', 'W DISCONNECT', 'B DISCONNECT', 'B ERROR', 'C PUBLISH', 'W PUBLISH',
    'B PUBLISH', 'B PUBLISH_ACK', 'C SUBSCRIBE']) {
    assert.ok(have.has(pair), `no vector for ${pair}`);
  }
  assert.ok(vectors.filter((v) => v.name.startsWith('invalid_')).length >= 50);
});

for (const v of vectors.filter((x) => !x.name.startsWith('invalid_'))) {
  test(`vector ${v.name}: decodes to its bodies`, () => {
    const msg = decodeMessage(frames(v));
    assert.equal(msg.role, v.role);
    assert.equal(msg.command, v.command);
    for (const body of msg.bodies) assert.ok(!(body instanceof WireError), `refused: ${body.message}`);
    assert.deepEqual(comparable(msg.bodies), comparable(fromVector(v.bodies)));
  });
  if (!v.decode_only) {
    test(`vector ${v.name}: re-encodes byte-exact`, () => {
      const encoded = encodeMessage(v.role, v.command, fromVector(v.bodies));
      assert.deepEqual(encoded.map((f) => f.toString('hex')), v.frames);
    });
  }
}

for (const v of vectors.filter((x) => x.name.startsWith('invalid_'))) {
  test(`vector ${v.name}: refused with ${v.expect_error}`, () => {
    let error;
    try {
      error = decodeMessage(frames(v)).bodies.find((b) => b instanceof WireError);
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof WireError, 'the message was accepted');
    assert.equal(error.code, v.expect_error, error.message);
    if (v.expect_id) assert.deepEqual(comparable(error.id), fromVector(v.expect_id));
  });
}
