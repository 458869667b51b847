// The response cache (PROTOCOL.md 10b) with a real yard-cache (L1 only).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client, Worker } from '../src/index.js';
import { Proc, bin, recordingLogger, startBroker, until } from './helpers.js';

describe('response cache', () => {
  let broker;
  let cache;
  let client;
  let worker;
  let runs = 0;

  before(async () => {
    broker = await startBroker();
    client = new Client({ broker: broker.endpoint, logger: recordingLogger() });
    cache = new Proc(bin('yard-cache'), ['--broker', broker.endpoint, '--events', broker.events, '--no-l2', '--log-level', 'warn']);
    await until(async () => (await client.stats()).services['yard.cache']?.workers === 1, { what: 'yard-cache' });
    worker = new Worker({ broker: broker.endpoint, logger: recordingLogger() });
    await worker.handle('costly', (job) => {
      runs += 1;
      return `computed ${job.payload}`;
    });
  });

  after(async () => {
    await worker.stop();
    await client.close();
    await cache.stop();
    await broker.stop();
  });

  test('a repeated task is answered from the cache without running', async () => {
    const policy = { ttlMs: 60_000, tags: ['answers'] };
    const first = await client.call('costly', 'q1', { cache: policy });
    assert.equal(first.cached, false);
    assert.equal(first.payload.toString(), 'computed q1');
    // The result is stored as it is answered, so a repeat may still race the store.
    const hit = await until(async () => {
      const r = await client.call('costly', 'q1', { cache: policy });
      return r.cached && r;
    }, { what: 'a cache hit' });
    assert.equal(hit.payload.toString(), 'computed q1');
    assert.equal(hit.attempts, 0);
    const runsBefore = runs;
    await client.call('costly', 'q1', { cache: true });
    assert.equal(runs, runsBefore, 'the policy is not part of the key');
    const other = await client.call('costly', 'q2', { cache: true });
    assert.equal(other.cached, false);
    const stats = (await client.stats()).services.costly;
    assert.ok(stats.cache_hits >= 2, JSON.stringify(stats));
  });
});
