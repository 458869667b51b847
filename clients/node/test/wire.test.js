// The codec beyond the vectors: uint64, limits, defaults, directions.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { WireError, decodeBody, encodeBody } from '../src/index.js';
import { parse } from '../src/msgpack.js';
import { reconnectDelay } from '../src/worker.js';

const hex = (h) => Buffer.from(h, 'hex');

function refusal(fn) {
  try {
    fn();
  } catch (err) {
    if (err instanceof WireError) return err.code;
    throw err;
  }
  return 'accepted';
}

test('job numbers: safe integers as numbers, larger uint64 as bigint, echoed exactly', () => {
  const task = (job) => encodeBody('B', 'TASK', { job, id: 't', service: 's', timeout_ms: 1, attempt: 1 });
  assert.equal(decodeBody('B', 'TASK', task(2 ** 53 - 1)).job, 2 ** 53 - 1);
  assert.equal(decodeBody('B', 'TASK', task(2n ** 53n)).job, 2n ** 53n);
  const max = decodeBody('B', 'TASK', task(2n ** 64n - 1n)).job;
  assert.equal(max, 2n ** 64n - 1n);
  const result = encodeBody('W', 'RESULT', { job: max, status: 'ok' });
  assert.equal(result.toString('hex'), '82a36a6f62cfffffffffffffffffa6737461747573a26f6b');
});

test('integers in any msgpack form, signed ones only when not negative', () => {
  const withRetries = (int) => Buffer.concat([hex('83a26964a174a773657276696365a173a772657472696573'), hex(int)]);
  assert.equal(decodeBody('C', 'SUBMIT', withRetries('d30000000000000003')).retries, 3);
  assert.equal(decodeBody('C', 'SUBMIT', withRetries('cd0010')).retries, 16);
  assert.equal(refusal(() => decodeBody('C', 'SUBMIT', withRetries('d0ff'))), 'YARD_E_RANGE');
  assert.equal(refusal(() => decodeBody('C', 'SUBMIT', withRetries('cb4008000000000000'))), 'YARD_E_TYPE');
  assert.equal(refusal(() => decodeBody('C', 'SUBMIT', withRetries('c3'))), 'YARD_E_TYPE');
});

test('encoders refuse what decoders would refuse', () => {
  const submit = (fields) => () => encodeBody('C', 'SUBMIT', { id: 'a', service: 's', ...fields });
  assert.equal(refusal(submit({ retries: 17 })), 'YARD_E_RANGE');
  assert.equal(refusal(submit({ backoff_ms: 60_001 })), 'YARD_E_RANGE');
  assert.equal(refusal(submit({ retries: 1.5 })), 'YARD_E_TYPE');
  assert.equal(refusal(submit({ service: 'a/b' })), 'YARD_E_RANGE');
  assert.equal(refusal(submit({ id: 'x'.repeat(129) })), 'YARD_E_RANGE');
  assert.equal(refusal(submit({ payload: Buffer.alloc(4 * 1024 * 1024 + 1) })), 'YARD_E_TOO_LARGE');
  assert.equal(refusal(submit({ headers: Array.from({ length: 33 }, (_, i) => [`h${i}`, '']) })), 'YARD_E_TOO_LARGE');
  assert.equal(refusal(submit({ headers: [['k', 'a'], ['k', 'b']] })), 'YARD_E_MALFORMED');
  assert.equal(refusal(() => encodeBody('C', 'SUBMIT', { service: 's' })), 'YARD_E_MISSING');
  assert.equal(refusal(() => encodeBody('C', 'PUBLISH', { type: 'a', ack: true })), 'YARD_E_MISSING');
  assert.equal(refusal(() => encodeBody('W', 'READY', { service: 's', capacity: 10_001 })), 'YARD_E_RANGE');
});

test('defaults are left out, a present empty payload is written', () => {
  const minimal = encodeBody('C', 'SUBMIT', {
    id: 'a',
    service: 's',
    timeout_ms: 30_000,
    retries: 0,
    backoff_ms: 100,
    priority: 0,
    headers: [],
  });
  assert.equal(minimal.toString('hex'), '82a26964a161a773657276696365a173');
  const empty = encodeBody('C', 'SUBMIT', { id: 'a', service: 's', payload: Buffer.alloc(0) });
  assert.equal(empty.toString('hex'), '83a26964a161a773657276696365a173a77061796c6f6164c400');
  const backoffZero = encodeBody('C', 'SUBMIT', { id: 'a', service: 's', backoff_ms: 0 });
  assert.deepEqual(decodeBody('C', 'SUBMIT', backoffZero), { id: 'a', service: 's', backoff_ms: 0 });
});

test("keys of the other direction are checked for type, then ignored (D14); unknown keys are ignored", () => {
  // W RESULT {job: 1, status: "ok", attempts: 2^40, zz: [1, 2], zz: nil}
  const foreignRange = hex('85a36a6f6201a6737461747573a26f6ba8617474656d707473cf0000010000000000a27a7a920102a27a7ac0');
  assert.deepEqual(decodeBody('W', 'RESULT', foreignRange), { job: 1, status: 'ok' });
  // W RESULT {job: 1, status: "ok", cached: 1}
  const foreignType = hex('83a36a6f6201a6737461747573a26f6ba663616368656401');
  assert.equal(refusal(() => decodeBody('W', 'RESULT', foreignType)), 'YARD_E_TYPE');
  assert.equal(refusal(() => decodeBody('W', 'RESULT', hex('82a36a6f6201a6737461747573a774696d656f7574'))), 'YARD_E_RANGE');
});

test('nesting up to 8 levels and 4096 elements are accepted, one more is refused', () => {
  const nested = (levels) => Buffer.concat([hex('91'.repeat(levels)), hex('c0')]);
  assert.equal(parse(nested(8)).type, 'array');
  assert.throws(() => parse(nested(9)), { code: 'YARD_E_TOO_LARGE' });
  const array = (n) => Buffer.concat([hex('dc'), Buffer.from([n >> 8, n & 0xff]), Buffer.alloc(n, 0xc0)]);
  assert.equal(parse(array(4096)).items.length, 4096);
  assert.throws(() => parse(array(4097)), { code: 'YARD_E_TOO_LARGE' });
  assert.throws(() => parse(hex('dc0005c0c0')), { code: 'YARD_E_MALFORMED' });
});

test('an id that is not UTF-8 stays bytes, other text must be UTF-8 (D9)', () => {
  const body = hex('82a26964a2fffea773657276696365a173');
  assert.deepEqual(decodeBody('C', 'SUBMIT', body).id, hex('fffe'));
  const error = hex('82a4636f6465a178a76d657373616765a2fffe');
  assert.equal(refusal(() => decodeBody('B', 'ERROR', error)), 'YARD_E_TYPE');
});

test('reconnect delays double from 100 ms, with jitter, up to 5000 ms', () => {
  for (let i = 0; i < 200; i++) {
    const first = reconnectDelay(1);
    assert.ok(first >= 80 && first <= 120, first);
    const fourth = reconnectDelay(4);
    assert.ok(fourth >= 640 && fourth <= 960, fourth);
    const late = reconnectDelay(20);
    assert.ok(late >= 4000 && late <= 5000, late);
  }
});
