// Circuit breakers (PROTOCOL.md 8.6) forced open with the C CLI, seen
// through the client: CircuitOpenError, fallback, reset by the admin service.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { CircuitOpenError, Client, TaskError, Worker } from '../src/index.js';
import { recordingLogger, runCli, startBroker } from './helpers.js';

describe('circuit breaker', () => {
  let broker;
  let client;
  let worker;

  before(async () => {
    broker = await startBroker();
    client = new Client({ broker: broker.endpoint, logger: recordingLogger() });
    worker = new Worker({ broker: broker.endpoint, logger: recordingLogger() });
    await worker.handle('fragile', () => {
      throw new Error('downstream is down');
    });
    await worker.handle('sturdy', (job) => `fallback for ${job.payload}`);
  });

  after(async () => {
    await worker.stop();
    await client.close();
    await broker.stop();
  });

  test('an open breaker rejects at once with CircuitOpenError, a fallback takes the task', async () => {
    const set = await runCli(['--broker', broker.endpoint, 'breaker', 'set', 'fragile', 'fail_threshold=1', 'base_timeout_ms=60000']);
    assert.equal(set.code, 0, set.output);

    assert.ok((await client.call('fragile', 'x').catch((e) => e)) instanceof TaskError);
    const open = await client.call('fragile', 'x').catch((e) => e);
    assert.ok(open instanceof CircuitOpenError, open);
    assert.equal(open.status, 'circuit_open');
    assert.ok(open.retryAfterMs > 0 && open.retryAfterMs <= 72_000, `retry after ${open.retryAfterMs} ms`);
    assert.equal(open.result.attempts, 0);

    const rescued = await client.call('fragile', 'x', { fallback: 'sturdy' });
    assert.equal(rescued.payload.toString(), 'fallback for x');

    const reset = await client.call('yard.admin', 'breaker reset fragile');
    assert.equal(JSON.parse(reset.payload.toString()).state, 'closed');
    assert.ok((await client.call('fragile', 'x').catch((e) => e)) instanceof TaskError);
  });
});
