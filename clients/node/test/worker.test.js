// The Node worker against a real broker: serving the C CLI, statuses,
// cancel, probes and reports, graceful stop, a worker killed mid-task.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CancelledError, Client, InvalidError, Reject, TaskError, TimeoutError, Worker } from '../src/index.js';
import { Proc, recordingLogger, runCli, startBroker, until } from './helpers.js';

describe('worker', () => {
  let broker;
  let client;
  let worker;
  const seen = [];

  before(async () => {
    broker = await startBroker();
    client = new Client({ broker: broker.endpoint, logger: recordingLogger() });
    worker = new Worker({ broker: broker.endpoint, capacity: 4, name: 'node-test', logger: recordingLogger() });
    await worker.handle('upper', async (job) => {
      seen.push(job);
      return job.payload.toString('utf8').toUpperCase();
    });
    await worker.handle('judge', async (job) => {
      const verdict = job.payload.toString();
      if (verdict === 'reject') throw new Reject('bad_request: not a real request');
      if (verdict === 'throw') throw new Error('boom');
      if (verdict === 'bytes') return new Uint8Array([1, 2, 3]);
      return undefined;
    });
    await worker.handle('patient', async (job) => {
      await once(job.signal, 'abort');
      throw job.signal.reason;
    });
  });

  after(async () => {
    await worker.stop();
    await client.close();
    await broker.stop();
  });

  test('serves the C CLI client', async () => {
    const { code, output } = await runCli(['--broker', broker.endpoint, 'submit', 'upper', 'hello from c']);
    assert.equal(code, 0, output);
    assert.equal(output, 'HELLO FROM C\n');
  });

  test('passes the task fields to the handler', async () => {
    await client.call('upper', 'x', { id: 'fields-1', headers: { trace_id: 't-1', tenant: 'acme' }, timeoutMs: 7000 });
    const job = seen.find((j) => j.id === 'fields-1');
    assert.deepEqual(job.headers, { trace_id: 't-1', tenant: 'acme' });
    assert.equal(job.service, 'upper');
    assert.equal(job.attempt, 1);
    assert.ok(job.timeoutMs > 0 && job.timeoutMs <= 7000);
    assert.ok(Number.isSafeInteger(job.job) && job.job > 0);
    assert.equal(job.signal.aborted, false);
  });

  test('maps handler outcomes to statuses', async () => {
    assert.deepEqual((await client.call('judge', 'bytes')).payload, Buffer.from([1, 2, 3]));
    assert.equal((await client.call('judge', 'nothing')).payload.length, 0);
    const thrown = await client.call('judge', 'throw', { retries: 1, backoffMs: 0 }).catch((e) => e);
    assert.ok(thrown instanceof TaskError, thrown);
    assert.equal(thrown.message, 'boom');
    assert.equal(thrown.result.attempts, 2);
    const rejected = await client.call('judge', 'reject', { retries: 3 }).catch((e) => e);
    assert.ok(rejected instanceof InvalidError, rejected);
    assert.equal(rejected.message, 'bad_request: not a real request');
    assert.equal(rejected.result.attempts, 1);
  });

  test('the C CLI sees a Reject as invalid', async () => {
    const { code, output } = await runCli(['--broker', broker.endpoint, 'submit', 'judge', 'reject']);
    assert.equal(code, 1);
    assert.match(output, /invalid: bad_request: not a real request/);
  });

  test('a cancelled task aborts the handler signal', async () => {
    const handle = client.submit('patient', 'x');
    await until(async () => (await client.stats()).services.patient.in_flight === 1, { what: 'the task to run' });
    handle.cancel();
    assert.ok((await handle.promise.catch((e) => e)) instanceof CancelledError);
    await until(async () => (await client.stats()).services.patient.in_flight === 0, { what: 'the cancelled result' });
  });

  test('a task past its deadline aborts the handler signal', async () => {
    const err = await client.call('patient', 'x', { timeoutMs: 300 }).catch((e) => e);
    assert.ok(err instanceof TimeoutError, err);
    await until(async () => (await client.stats()).services.patient.in_flight === 0, { what: 'the slot to free' });
  });

  test('answers probes at once and reports its health', async () => {
    const answer = await client.ping(2000);
    const mine = answer.workers.filter((w) => w.pid === process.pid);
    assert.equal(mine.length, 3);
    for (const w of mine) {
      assert.equal(w.answered, true, JSON.stringify(answer));
      assert.equal(w.name, 'node-test');
    }
    const stats = await client.stats();
    const entry = stats.workers.find((w) => w.name === 'node-test' && w.service === 'upper');
    assert.ok(entry.report, JSON.stringify(entry));
    assert.equal(entry.report.version, '0.1.0');
    assert.ok(entry.report.uptime_ms > 0);
    assert.ok(entry.report.memory.rss_bytes > 0);
    assert.ok(entry.ping.rtt_us >= 0);
  });
});

describe('worker lifecycle', () => {
  let broker;
  let client;

  before(async () => {
    broker = await startBroker();
    client = new Client({ broker: broker.endpoint, logger: recordingLogger() });
  });

  after(async () => {
    await client.close();
    await broker.stop();
  });

  test('a graceful stop finishes held tasks, then leaves', async () => {
    const worker = new Worker({ broker: broker.endpoint, capacity: 3, logger: recordingLogger() });
    let started = 0;
    await worker.handle('graceful', async (job) => {
      started += 1;
      await new Promise((resolve) => setTimeout(resolve, 300));
      return job.payload;
    });
    const pending = client.batch('graceful', ['a', 'b', 'c']);
    await until(() => started === 3, { what: 'three running tasks' });
    await worker.stop();
    const results = await pending;
    assert.deepEqual(results.map((r) => r.payload.toString()), ['a', 'b', 'c']);
    const service = (await client.stats()).services.graceful;
    assert.equal(service.workers, 0);
    assert.ok((await client.call('graceful', 'late', { timeoutMs: 200 }).catch((e) => e)) instanceof TimeoutError);
  });

  test('a task held by a killed worker is dispatched again', async () => {
    const stuck = new Proc(process.execPath, [fileURLToPath(new URL('fixtures/stuck-worker.js', import.meta.url))], {
      env: { ...process.env, YARD_BROKER: broker.endpoint, YARD_SERVICE: 'redispatch' },
    });
    try {
      await until(() => stuck.output.includes('registered'), { what: 'the stuck worker' });
      const pending = client.call('redispatch', 'work', { timeoutMs: 20_000 });
      await until(() => stuck.output.includes('running'), { what: 'the task to start' });
      stuck.kill('SIGKILL');
      await stuck.exited;
      const rescuer = new Worker({ broker: broker.endpoint, logger: recordingLogger() });
      await rescuer.handle('redispatch', (job) => `attempt ${job.attempt}`);
      const result = await pending;
      assert.equal(result.payload.toString(), 'attempt 2');
      assert.equal(result.attempts, 2);
      await rescuer.stop();
    } finally {
      await stuck.stop();
    }
  });

  test('a service name the broker keeps for itself is refused', async () => {
    const worker = new Worker({ broker: broker.endpoint, logger: recordingLogger() });
    await assert.rejects(worker.handle('yard.admin', () => 'x'), InvalidError);
    await assert.rejects(worker.handle('no spaces', () => 'x'), InvalidError);
  });
});
