// The client against a real broker and C workers: results and every error
// status, retries, priorities, cancel, batch, map.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  BrokerUnreachableError,
  CancelledError,
  Client,
  InvalidError,
  RejectedError,
  Result,
  TaskError,
  TimeoutError,
  Worker,
} from '../src/index.js';
import { recordingLogger, startBroker, startCWorker, until } from './helpers.js';

describe('client', () => {
  let broker;
  let client;
  const cWorkers = [];

  before(async () => {
    broker = await startBroker();
    client = new Client({ broker: broker.endpoint, logger: recordingLogger() });
    cWorkers.push(await startCWorker(client, broker.endpoint, { handler: 'echo' }));
    cWorkers.push(await startCWorker(client, broker.endpoint, { handler: 'fail' }));
    cWorkers.push(await startCWorker(client, broker.endpoint, { handler: 'sleep' }));
  });

  after(async () => {
    await client.close();
    await Promise.all(cWorkers.map((w) => w.stop()));
    await broker.stop();
  });

  test('call resolves with the result of a C worker', async () => {
    const result = await client.call('echo', Buffer.from([0, 1, 2, 255]), { headers: { trace_id: 'abc' } });
    assert.ok(result instanceof Result);
    assert.equal(result.status, 'ok');
    assert.deepEqual(result.payload, Buffer.from([0, 1, 2, 255]));
    assert.equal(result.attempts, 1);
    assert.equal(result.cached, false);
    assert.ok(result.totalUs > 0);
  });

  test('a string payload travels as UTF-8 bytes, and no payload as an empty one', async () => {
    assert.equal((await client.call('echo', 'héllo')).payload.toString('utf8'), 'héllo');
    assert.equal((await client.call('echo')).payload.length, 0);
  });

  test('a failing handler rejects with TaskError after the retries', async () => {
    const err = await client.call('fail', 'x', { retries: 2, backoffMs: 10 }).catch((e) => e);
    assert.ok(err instanceof TaskError, err);
    assert.equal(err.status, 'error');
    assert.equal(err.message, 'fail handler: always fails');
    assert.equal(err.result.attempts, 3);
    assert.match(err.id, /.+/);
  });

  test('a task past its deadline rejects with TimeoutError from the broker', async () => {
    const err = await client.call('sleep', '5000', { timeoutMs: 300 }).catch((e) => e);
    assert.ok(err instanceof TimeoutError, err);
    assert.ok(!(err instanceof BrokerUnreachableError));
    assert.equal(err.message, 'deadline exceeded');
  });

  test('a task the broker finds invalid rejects with InvalidError', async () => {
    const err = await client.call('yard.admin', 'no such command').catch((e) => e);
    assert.ok(err instanceof InvalidError, err);
    assert.match(err.message, /^bad_field: /);
  });

  test('options are checked before anything is sent', async () => {
    for (const [service, options] of [
      ['echo', { retries: 17 }],
      ['echo', { priority: 10 }],
      ['echo', { timeoutMs: 0 }],
      ['bad service', {}],
      ['echo', { headers: { '': 'empty key' } }],
      ['echo', { cache: { key: ['a'], exclude: ['b'] } }],
    ]) {
      const err = await client.call(service, 'x', options).catch((e) => e);
      assert.ok(err instanceof InvalidError, `${service} ${JSON.stringify(options)}: ${err}`);
    }
    assert.ok((await client.call('echo', 42).catch((e) => e)) instanceof InvalidError);
  });

  test('an id still outstanding is refused', async () => {
    const first = client.submit('sleep', '200', { id: 'same-id' });
    const err = await client.call('echo', 'x', { id: 'same-id' }).catch((e) => e);
    assert.ok(err instanceof InvalidError);
    assert.match(err.message, /still outstanding/);
    assert.equal((await first.promise).id, 'same-id');
    assert.equal((await client.call('echo', 'again', { id: 'same-id' })).payload.toString(), 'again');
  });

  test('cancel ends a running task with CancelledError', async () => {
    const handle = client.submit('sleep', '10000');
    await until(async () => (await client.stats()).services.sleep.in_flight === 1, { what: 'the task to run' });
    handle.cancel();
    const err = await handle.promise.catch((e) => e);
    assert.ok(err instanceof CancelledError, err);
    assert.equal(err.message, 'cancelled by client');
  });

  test('an AbortSignal cancels a queued task', async () => {
    const controller = new AbortController();
    const pending = client.call('nobody-serves-this', 'x', { signal: controller.signal });
    controller.abort();
    assert.ok((await pending.catch((e) => e)) instanceof CancelledError);
  });

  test('batch sends up to 256 bodies per SUBMIT and returns results in order', async () => {
    const payloads = Array.from({ length: 600 }, (_, i) => `item-${i}`);
    const before = (await client.stats()).services.echo.submitted;
    const results = await client.batch('echo', payloads);
    assert.deepEqual(results.map((r) => r.payload.toString()), payloads);
    assert.equal((await client.stats()).services.echo.submitted - before, 600);
  });

  test('batch reports each failure in its place', async () => {
    const results = await client.batch('sleep', ['10', 'not-a-number', '10'], { timeoutMs: 5000 });
    assert.ok(results[0] instanceof Result);
    assert.ok(results[1] instanceof Error && results[1].status !== 'ok');
    assert.ok(results[2] instanceof Result);
  });

  test('map keeps a window of tasks outstanding and yields in input order', async () => {
    async function* numbers() {
      for (let i = 0; i < 50; i++) yield String(i);
    }
    const seen = [];
    for await (const result of client.map('echo', numbers(), { window: 8 })) seen.push(result.payload.toString());
    assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => String(i)));
  });

  test('map throws the failure of a task and cancels the rest', async () => {
    const iterator = client.map('sleep', ['10', '10', 'bad', '10000', '10000'], { window: 5, timeoutMs: 20_000 });
    const seen = [];
    const err = await (async () => {
      for await (const r of iterator) seen.push(r);
    })().catch((e) => e);
    assert.equal(seen.length, 2);
    assert.ok(err instanceof TaskError || err instanceof InvalidError, err);
    await until(async () => (await client.stats()).services.sleep.in_flight === 0, { what: 'cancels' });
  });

  test('priority 9 tasks are served before priority 0 tasks', async () => {
    const order = [];
    let release;
    const gate = new Promise((resolve) => (release = resolve));
    const worker = new Worker({ broker: broker.endpoint, capacity: 1, logger: recordingLogger() });
    await worker.handle('ordered', async (job) => {
      const name = job.payload.toString();
      if (name === 'blocker') await gate;
      order.push(name);
      return name;
    });
    const blocker = client.call('ordered', 'blocker');
    await until(async () => (await client.stats()).services.ordered.in_flight === 1, { what: 'the blocker' });
    const rest = client.batch('ordered', ['low-1', 'low-2'], { priority: 0 });
    const urgent = client.batch('ordered', ['high-1', 'high-2'], { priority: 9 });
    await until(async () => (await client.stats()).services.ordered.queued === 4, { what: 'the queue' });
    release();
    await Promise.all([blocker, rest, urgent]);
    assert.deepEqual(order, ['blocker', 'high-1', 'high-2', 'low-1', 'low-2']);
    await worker.stop();
  });

  test('a client closed with tasks outstanding ends them and tells the broker', async () => {
    const other = new Client({ broker: broker.endpoint, logger: recordingLogger() });
    const pending = other.call('sleep', '30000');
    await until(async () => (await client.stats()).services.sleep.in_flight === 1, { what: 'the task to run' });
    await other.close();
    assert.ok((await pending.catch((e) => e)) instanceof CancelledError);
    await until(async () => (await client.stats()).services.sleep.in_flight === 0, { what: 'the broker to drop it' });
    assert.ok((await other.call('echo', 'x').catch((e) => e)) instanceof CancelledError);
  });
});

describe('client against a full queue', () => {
  test('a full queue rejects with RejectedError and a retry hint', async () => {
    const broker = await startBroker(['--max-queue', '1']);
    const client = new Client({ broker: broker.endpoint, logger: recordingLogger() });
    try {
      const first = client.submit('idle', 'a', { timeoutMs: 1000 });
      const err = await client.call('idle', 'b').catch((e) => e);
      assert.ok(err instanceof RejectedError, err);
      assert.equal(err.retryAfterMs, 1000);
      assert.ok((await first.promise.catch((e) => e)) instanceof TimeoutError);
    } finally {
      await client.close();
      await broker.stop();
    }
  });
});

describe('client without a broker', () => {
  test('gives up timeout_ms + 2000 ms after sending with BrokerUnreachableError', async () => {
    const client = new Client({ broker: 'tcp://127.0.0.1:1', logger: recordingLogger() });
    const started = Date.now();
    const err = await client.call('echo', 'x', { timeoutMs: 100 }).catch((e) => e);
    const elapsed = Date.now() - started;
    assert.ok(err instanceof BrokerUnreachableError, err);
    assert.ok(err instanceof TimeoutError);
    assert.equal(err.message, 'no reply from broker');
    assert.ok(elapsed >= 2000 && elapsed < 6000, `gave up after ${elapsed} ms`);
    await client.close();
  });
});
