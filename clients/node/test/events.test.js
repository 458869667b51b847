// Events through a real broker: publish / subscribe round trips, the
// broker's own events, the C CLI as a publisher, and a broker restart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client, InvalidError, Worker } from '../src/index.js';
import { recordingLogger, runCli, startBroker, startCWorker } from './helpers.js';

/** The next event of `subscription`, or a failure after `timeoutMs`. */
async function nextEvent(iterator, timeoutMs = 5000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no event')), timeoutMs);
  });
  try {
    const { value, done } = await Promise.race([iterator.next(), timeout]);
    assert.equal(done, false);
    return value;
  } finally {
    clearTimeout(timer);
  }
}

describe('events', () => {
  let broker;
  let client;

  before(async () => {
    broker = await startBroker();
    client = new Client({ broker: broker.endpoint, events: broker.events, logger: recordingLogger() });
  });

  after(async () => {
    await client.close();
    await broker.stop();
  });

  test('a published event reaches a subscriber with every field', async () => {
    const subscription = await client.subscribe(['test.']);
    const events = subscription[Symbol.asyncIterator]();
    await client.publish('other.ignored', 1, { confirm: true });
    const payload = { n: 1, list: [1, 'a', null], big: 2 ** 40, bytes: Buffer.from([1, 2]) };
    await client.publish('test.hello', payload, {
      source: 'node-test',
      traceId: 'trace-1',
      meta: { tenant: 'acme' },
      confirm: true,
    });
    const event = await nextEvent(events);
    assert.equal(event.type, 'test.hello');
    assert.equal(event.source, 'node-test');
    assert.equal(event.traceId, 'trace-1');
    assert.deepEqual(event.meta, { tenant: 'acme' });
    assert.deepEqual(event.payload, payload);
    assert.ok(event.tsUs > 1_600_000_000_000_000, 'stamped by the broker');
    assert.equal(event.sn, 1);
    await client.publish('test.bare');
    const bare = await nextEvent(events);
    assert.equal(bare.payload, undefined);
    assert.equal(bare.sn, 2);
    assert.equal(subscription.missed, 0);
    await events.return();
  });

  test('an event the client cannot send is refused before sending', async () => {
    await assert.rejects(client.publish('has space', 1), InvalidError);
    await assert.rejects(client.publish('', 1, { confirm: true }), InvalidError);
  });

  test("the broker's task events and the C CLI's events arrive decoded", async () => {
    const subscription = await client.subscribe(['task.completed', 'cli.']);
    const events = subscription[Symbol.asyncIterator]();
    const worker = new Worker({ broker: broker.endpoint, logger: recordingLogger() });
    await worker.handle('evented', () => 'done');
    await client.call('evented', 'x', { id: 'evented-1' });
    const completed = await nextEvent(events);
    assert.equal(completed.type, 'task.completed');
    assert.equal(completed.source, 'yard-broker');
    assert.equal(completed.payload.id, 'evented-1');
    assert.equal(completed.payload.service, 'evented');
    const { code, output } = await runCli(['--broker', broker.endpoint, 'publish', 'cli.said', 'hello']);
    assert.equal(code, 0, output);
    const said = await nextEvent(events);
    assert.equal(said.type, 'cli.said');
    assert.equal(said.payload, 'hello');
    assert.deepEqual(said.rawPayload, Buffer.from('a568656c6c6f', 'hex'));
    await worker.stop();
    await subscription.close();
    assert.equal((await events.next()).done, true);
  });
});

describe('a broker restart', () => {
  test('outstanding tasks are resent and subscriptions renewed', async () => {
    const first = await startBroker();
    const ports = { port: first.port, eventsPort: first.eventsPort };
    const logger = recordingLogger();
    const client = new Client({ broker: first.endpoint, events: first.events, logger });
    let second;
    let echo;
    try {
      const subscription = await client.subscribe(['system.', 'test.']);
      const events = subscription[Symbol.asyncIterator]();
      const startup = await nextEvent(events);
      assert.equal(startup.type, 'system.startup');
      assert.equal(startup.payload.pid, first.proc.pid);

      const pending = client.call('echo', 'survivor', { timeoutMs: 20_000 });
      first.proc.kill('SIGKILL');
      await first.proc.exited;
      second = await startBroker([], ports);
      const admin = new Client({ broker: second.endpoint, logger });
      echo = await startCWorker(admin, second.endpoint, { handler: 'echo' }).finally(() => admin.close());

      assert.equal((await pending).payload.toString(), 'survivor');
      const restarted = await nextEvent(events, 10_000);
      assert.equal(restarted.type, 'system.startup');
      assert.equal(restarted.payload.pid, second.proc.pid);
      assert.equal(restarted.sn, 1);
      await client.publish('test.after', 'still here', { confirm: true });
      assert.equal((await nextEvent(events)).payload, 'still here');
    } finally {
      await client.close();
      await echo?.stop();
      await second?.stop();
    }
  });
});
