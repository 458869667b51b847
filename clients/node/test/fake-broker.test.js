// The client, worker and subscriber against a raw ROUTER playing the broker:
// the behaviour of PROTOCOL.md 8.2, 8.3 and 5.11 on the wire, and garbage
// that must not crash them.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { encode } from '@msgpack/msgpack';
import { Router } from 'zeromq';

import { Client, InvalidError, Worker, decodeMessage, encodeBody } from '../src/index.js';
import { freePort, recordingLogger, until } from './helpers.js';

const B = (command) => Buffer.from([0x59, 0x42, 0x01, command]);
const RESULT = 0x02;
const TASK = 0x05;
const HEARTBEAT = 0x06;
const DISCONNECT = 0x07;
const ERROR = 0x08;
const PUBLISH = 0x10;
const PUBLISH_ACK = 0x11;
const hex = (h) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

/** A ROUTER that records what peers send, decoded, and replies by hand. */
class FakeBroker {
  messages = [];

  async start() {
    this.port = await freePort();
    this.endpoint = `tcp://127.0.0.1:${this.port}`;
    this.router = new Router({ linger: 0, handover: true });
    await this.router.bind(this.endpoint);
    this.#receive();
    return this;
  }

  async #receive() {
    for await (const [peer, ...frames] of this.router) {
      this.messages.push({ peer, at: Date.now(), ...decodeMessage(frames) });
    }
  }

  /** Waits for the next message with `command` (and, if given, from `peer`) after index `from`. */
  async next(command, { from = 0, peer, timeoutMs = 10_000 } = {}) {
    return until(
      () => this.messages.slice(from).find((m) => m.command === command && (!peer || m.peer.equals(peer))),
      { timeoutMs, intervalMs: 10, what: command },
    );
  }

  send(peer, ...frames) {
    return this.router.send([peer, ...frames]);
  }

  close() {
    this.router.close();
  }
}

const resultBody = (fields) => encodeBody('B', 'RESULT', fields);

describe('client and a fake broker', () => {
  let fake;
  let client;
  let logger;

  beforeEach(async () => {
    fake = await new FakeBroker().start();
    logger = recordingLogger();
    client = new Client({ broker: fake.endpoint, logger });
  });

  afterEach(async () => {
    await client.close();
    fake.close();
  });

  test('heartbeats after 1 s of silence, then resends on a new connection with the same identity', async () => {
    const pending = client.call('svc', 'hi', { timeoutMs: 20_000 });
    const submit = await fake.next('SUBMIT');
    const heartbeat = await fake.next('HEARTBEAT');
    const gap = heartbeat.at - submit.at;
    assert.ok(gap >= 900 && gap < 2500, `first heartbeat after ${gap} ms`);
    const resent = await fake.next('SUBMIT', { from: fake.messages.indexOf(submit) + 1 });
    assert.ok(resent.at - submit.at >= 2900, `resent after ${resent.at - submit.at} ms`);
    assert.deepEqual(resent.peer, submit.peer);
    assert.deepEqual(resent.bodies, submit.bodies);
    await fake.send(resent.peer, B(RESULT), resultBody({ id: submit.bodies[0].id, status: 'ok', payload: Buffer.from('late') }));
    assert.equal((await pending).payload.toString(), 'late');
    assert.ok(logger.lines.some((l) => l.includes('reconnecting')));
  });

  test('sends nothing while no task is outstanding', async () => {
    const pending = client.call('svc', 'x');
    const { peer, bodies } = await fake.next('SUBMIT');
    await fake.send(peer, B(RESULT), resultBody({ id: bodies[0].id, status: 'ok' }));
    await pending;
    const count = fake.messages.length;
    await sleep(1500);
    assert.equal(fake.messages.length, count);
  });

  test('a DISCONNECT from the broker makes it resend at once', async () => {
    const pending = client.call('svc', 'x');
    const submit = await fake.next('SUBMIT');
    await fake.send(submit.peer, B(DISCONNECT));
    const resent = await fake.next('SUBMIT', { from: fake.messages.indexOf(submit) + 1, timeoutMs: 900 });
    await fake.send(resent.peer, B(RESULT), resultBody({ id: submit.bodies[0].id, status: 'ok' }));
    await pending;
  });

  test('survives garbage and still completes its task', async () => {
    const pending = client.call('svc', 'x', { timeoutMs: 20_000 });
    const { peer, bodies } = await fake.next('SUBMIT');
    const garbage = [
      [Buffer.alloc(0)],
      [Buffer.from('YB')],
      [Buffer.from('not a header at all')],
      [hex('59420202'), resultBody({ id: bodies[0].id, status: 'ok' })], // version 2
      [hex('59430102'), resultBody({ id: bodies[0].id, status: 'ok' })], // role C
      [hex('59580102')], // unknown role
      [B(RESULT)], // no body
      [B(RESULT), hex('ddffffffff')], // array32 claiming 4 G elements
      [B(RESULT), hex('c6ffffffff')],
      [B(RESULT), hex('81a178c1')],
      [B(RESULT), hex('83a26964a174a6737461747573a26f6ba663616368656401')], // bad cached, unknown id
      [B(RESULT), hex('8f')],
      [B(TASK), encodeBody('B', 'TASK', { job: 1, id: 't', service: 's', timeout_ms: 5, attempt: 1 })],
      [B(0x20)],
      [B(0x7f), hex('80')],
      [B(ERROR), hex('80')],
      [B(ERROR), encodeBody('B', 'ERROR', { code: 'malformed', message: 'something else' })],
      [B(PUBLISH_ACK), encodeBody('B', 'PUBLISH_ACK', { seq: 99, status: 'ok' })],
      [B(HEARTBEAT), hex('81a570726f626507')],
      [B(RESULT), Buffer.alloc(5 * 1024 * 1024, 0xc0)],
      [B(RESULT), ...Array.from({ length: 300 }, () => hex('80'))],
    ];
    for (const frames of garbage) await fake.send(peer, ...frames);
    await fake.send(peer, B(RESULT), resultBody({ id: bodies[0].id, status: 'ok', payload: Buffer.from('fine') }));
    assert.equal((await pending).payload.toString(), 'fine');
    assert.ok(logger.lines.length >= garbage.length - 2, logger.lines.join('\n'));
  });

  test('an unreadable RESULT body with a readable id ends that task invalid', async () => {
    const pending = client.call('svc', 'x');
    const { peer, bodies } = await fake.next('SUBMIT');
    const id = Buffer.from(bodies[0].id);
    // {id, status: "bogus"}
    const body = Buffer.concat([hex('82a26964'), Buffer.from([0xa0 | id.length]), id, hex('a6737461747573a5626f677573')]);
    await fake.send(peer, B(RESULT), body);
    const err = await pending.catch((e) => e);
    assert.ok(err instanceof InvalidError, err);
    assert.match(err.message, /^bad result from broker: bad_field: /);
  });

  test('an ERROR naming a task ends it invalid; bad_version ends them all', async () => {
    const first = client.call('svc', '1');
    const second = client.call('svc', '2');
    const third = client.call('svc', '3');
    const { peer, bodies } = await fake.next('SUBMIT');
    const [a] = bodies;
    await fake.send(peer, B(ERROR), encodeBody('B', 'ERROR', { code: 'bad_field', message: 'nope', id: a.id }));
    const err = await first.catch((e) => e);
    assert.ok(err instanceof InvalidError);
    assert.equal(err.message, 'nope');
    await fake.send(peer, B(ERROR), encodeBody('B', 'ERROR', { code: 'bad_version', message: 'this broker speaks YARD/1' }));
    for (const p of [second, third]) assert.equal((await p.catch((e) => e)).message, 'this broker speaks YARD/1');
  });

  test('a published event with confirm waits for its PUBLISH_ACK', async () => {
    const accepted = client.publish('app.ok', { n: 1 }, { confirm: true });
    const refused = client.publish('app.refused', 'x', { confirm: true });
    const message = await fake.next('PUBLISH');
    const [one, two] = message.bodies;
    assert.deepEqual([one.type, one.ack, two.type, two.ack], ['app.ok', true, 'app.refused', true]);
    assert.deepEqual(one.payload, Buffer.from(encode({ n: 1 })));
    await fake.send(
      message.peer,
      B(PUBLISH_ACK),
      encodeBody('B', 'PUBLISH_ACK', { seq: one.seq, status: 'ok' }),
      encodeBody('B', 'PUBLISH_ACK', { seq: two.seq, status: 'invalid', error: 'bad_field: no' }),
    );
    await accepted;
    const err = await refused.catch((e) => e);
    assert.ok(err instanceof InvalidError);
    assert.equal(err.message, 'bad_field: no');
  });
});

describe('worker and a fake broker', () => {
  let fake;
  let worker;
  let logger;

  beforeEach(async () => {
    fake = await new FakeBroker().start();
    logger = recordingLogger();
    worker = new Worker({ broker: fake.endpoint, capacity: 2, name: 'w1', version: '9.9.9', logger });
  });

  afterEach(async () => {
    await worker.stop();
    fake.close();
  });

  /** Registers the worker with `handler`: READY, then the HEARTBEAT that acknowledges it. */
  async function register(handler) {
    const registered = worker.handle('svc', handler);
    const ready = await fake.next('READY');
    assert.deepEqual(ready.bodies[0], { service: 'svc', capacity: 2, name: 'w1', pid: process.pid, version: '9.9.9' });
    await fake.send(ready.peer, B(HEARTBEAT));
    await registered;
    return ready.peer;
  }

  const task = (job, fields = {}) =>
    encodeBody('B', 'TASK', { job, id: `t${job}`, service: 'svc', timeout_ms: 5000, attempt: 1, ...fields });

  test('answers a probe at once with a report', async () => {
    const peer = await register(() => 'x');
    const from = fake.messages.length;
    await fake.send(peer, B(HEARTBEAT), hex('81a570726f626507'));
    const answer = await fake.next('HEARTBEAT', { from, timeoutMs: 500 });
    const report = answer.bodies[0];
    assert.equal(report.probe, 7);
    assert.equal(report.version, '9.9.9');
    assert.ok(report.uptime_ms > 0 && report.rss > 0 && report.rss_peak >= report.rss);
  });

  test('runs tasks, echoes job numbers up to 2^64-1, answers a bad task with an error', async () => {
    const peer = await register((job) => `${job.payload}:${job.attempt}`);
    const big = 2n ** 64n - 1n;
    const from = fake.messages.length;
    await fake.send(
      peer,
      B(TASK),
      task(2 ** 53 - 1, { payload: Buffer.from('a') }),
      task(big, { payload: Buffer.from('b'), attempt: 3 }),
      hex('83a36a6f620aa26964a174a7736572766963650c'), // job 10, service not a str
      hex('81a26964a178'), // no job: discarded
    );
    await until(() => fake.messages.slice(from).filter((m) => m.command === 'RESULT').flatMap((m) => m.bodies).length === 3, {
      what: 'three results',
    });
    const results = fake.messages.slice(from).filter((m) => m.command === 'RESULT').flatMap((m) => m.bodies);
    const byJob = new Map(results.map((r) => [r.job, r]));
    assert.equal(byJob.get(2 ** 53 - 1).payload.toString(), 'a:1');
    assert.equal(byJob.get(big).payload.toString(), 'b:3');
    assert.equal(byJob.get(10).status, 'error');
    assert.match(byJob.get(10).error, /^invalid task: bad_field: /);
  });

  test('survives garbage and keeps serving', async () => {
    const peer = await register((job) => job.payload);
    const from = fake.messages.length;
    for (const frames of [
      [Buffer.alloc(0)],
      [hex('59420205'), task(1)], // version 2
      [hex('59570105'), task(2)], // role W
      [B(TASK)],
      [B(TASK), hex('dfffffffff')],
      [B(TASK), hex('c1')],
      [B(0x03), hex('81a36a6f62a178')], // CANCEL with a str job
      [B(HEARTBEAT), hex('80'), hex('80')],
      [B(HEARTBEAT), hex('81a570726f626500')], // probe 0: not a probe
      [B(0x01), hex('80')], // SUBMIT is not for workers
      [B(ERROR), encodeBody('B', 'ERROR', { code: 'malformed', message: 'a refusal of something' })],
    ]) {
      await fake.send(peer, ...frames);
    }
    await fake.send(peer, B(TASK), task(3, { payload: Buffer.from('still here') }));
    const result = await fake.next('RESULT', { from });
    assert.deepEqual(result.bodies.map((b) => [b.job, b.payload.toString()]), [[3, 'still here']]);
    assert.ok(logger.lines.length >= 9, logger.lines.join('\n'));
  });

  test('ignores a duplicate TASK and stops a cancelled handler', async () => {
    let runs = 0;
    const peer = await register(async (job) => {
      runs += 1;
      await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
      throw new Error('stopped');
    });
    const from = fake.messages.length;
    await fake.send(peer, B(TASK), task(5));
    await fake.send(peer, B(TASK), task(5));
    await until(() => runs === 1, { what: 'the handler' });
    await fake.send(peer, B(0x03), encodeBody('B', 'CANCEL', { job: 5 }));
    const result = await fake.next('RESULT', { from });
    assert.deepEqual(result.bodies, [{ job: 5, status: 'cancelled', error: 'cancelled', run_us: result.bodies[0].run_us }]);
    assert.equal(runs, 1);
  });

  test('a DISCONNECT from the broker makes it register again on a new connection', async () => {
    const peer = await register(() => 'x');
    const from = fake.messages.length;
    await fake.send(peer, B(DISCONNECT), encodeBody('B', 'DISCONNECT', { code: 'not_ready', message: 'send READY first' }));
    const again = await fake.next('READY', { from });
    assert.ok(!again.peer.equals(peer), 'a reconnecting worker is a new connection');
  });

  test('a refused READY rejects handle', async () => {
    const registered = worker.handle('svc', () => 'x');
    const ready = await fake.next('READY');
    await fake.send(ready.peer, B(ERROR), encodeBody('B', 'ERROR', { code: 'bad_field', message: 'no thanks' }));
    await assert.rejects(registered, { name: 'InvalidError', message: 'bad_field: no thanks' });
    assert.equal((await fake.next('DISCONNECT')).command, 'DISCONNECT');
  });

  test('a graceful stop sends READY capacity 0, the last results, then DISCONNECT', async () => {
    let finish;
    const peer = await register(() => new Promise((resolve) => (finish = resolve)));
    const from = fake.messages.length;
    await fake.send(peer, B(TASK), task(1));
    await until(() => finish, { what: 'the handler' });
    const stopped = worker.stop();
    const drain = await fake.next('READY', { from });
    assert.equal(drain.bodies[0].capacity, 0);
    finish('done');
    await stopped;
    await fake.next('DISCONNECT', { from });
    const sequence = fake.messages.slice(from).map((m) => m.command).filter((c) => c !== 'HEARTBEAT');
    assert.deepEqual(sequence, ['READY', 'RESULT', 'DISCONNECT']);
  });
});

describe('subscriber and a fake broker', () => {
  test('counts missed events from sn gaps and subscribes again when the broker forgets it', async () => {
    const fake = await new FakeBroker().start();
    const client = new Client({ broker: 'tcp://127.0.0.1:1', events: fake.endpoint, logger: recordingLogger() });
    try {
      const subscribing = client.subscribe(['app.']);
      const first = await fake.next('SUBSCRIBE');
      assert.deepEqual(first.bodies[0], { types: ['app.'] });
      await fake.send(first.peer, B(HEARTBEAT));
      const subscription = await subscribing;
      const event = (sn, payload) => encodeBody('B', 'PUBLISH', { type: 'app.x', payload: Buffer.from(encode(payload)), sn });
      await fake.send(first.peer, B(PUBLISH), event(1, 'a'), event(2, 'b'), event(5, 'c'));
      const events = subscription[Symbol.asyncIterator]();
      const got = [];
      for (let i = 0; i < 3; i++) got.push((await events.next()).value);
      assert.deepEqual(got.map((e) => [e.payload, e.sn]), [['a', 1], ['b', 2], ['c', 5]]);
      assert.equal(subscription.missed, 2);
      const from = fake.messages.length;
      await fake.send(first.peer, B(DISCONNECT));
      await fake.next('SUBSCRIBE', { from, timeoutMs: 1000 });
      await fake.send(first.peer, B(PUBLISH), event(3, 'd'));
      assert.equal((await events.next()).value.payload, 'd');
      assert.equal(subscription.missed, 4);
      await events.return();
      assert.equal((await fake.next('DISCONNECT', { from })).command, 'DISCONNECT');
    } finally {
      await client.close();
      fake.close();
    }
  });
});
