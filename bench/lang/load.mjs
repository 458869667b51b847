// load.mjs — the closed-loop load of yard-bench --load-only, through the
// Node client library (clients/node, imported by relative path).
//
// One process, one Client, --window tasks in flight: --window "lanes",
// each an async loop that awaits `client.call` (the promise API) and calls
// again, the idiomatic way to keep K promises outstanding. The client
// sends the SUBMITs made in one turn of the event loop as one message.
// Every payload carries a sequence number and its submit time (the first
// 16 bytes, as yard-bench stamps them); latency runs from just before the
// call to the moment the awaiting code resumes with the Result.
//
// Measured: the --duration seconds after a --warmup (0.5 s). A reply that
// is not an intact echo, a task that fails, or one still unanswered 5 s
// after the window closed counts as an error. Prints one JSON object with
// --json (the keys of yard-bench --load-only --json), else a line.
//
//   node bench/lang/load.mjs --broker tcp://127.0.0.1:5555 --service echo \
//     --window 16 --payload 64 --duration 3 --json

import { parseArgs } from 'node:util';

import { Client } from '../../clients/node/src/index.js';
import { CpuWindow, percentile } from './_stats.mjs';

const STAMP = 16; // sequence (u64 LE), submit time in us (i64 LE)
const DRAIN_MS = 5000;

function fail(message) {
  process.stderr.write(`load.mjs: ${message}\n`);
  process.exit(2);
}

function options() {
  const { values } = parseArgs({
    options: {
      broker: { type: 'string' },
      service: { type: 'string' },
      window: { type: 'string', default: '16' },
      payload: { type: 'string', default: '64' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '0.5' },
      'broker-pid': { type: 'string', default: '0' },
      'worker-pid': { type: 'string', multiple: true, default: [] },
      json: { type: 'boolean', default: false },
    },
  });
  const o = {
    broker: values.broker,
    service: values.service,
    window: Number(values.window),
    payload: Number(values.payload),
    duration: Number(values.duration),
    warmup: Number(values.warmup),
    brokerPid: Number(values['broker-pid']),
    workerPids: values['worker-pid'].map(Number),
    json: values.json,
  };
  if (!o.broker || !o.service) fail('--broker and --service are required');
  if (!Number.isInteger(o.window) || o.window < 1 || o.window > 4096) fail('--window must be in 1..4096');
  if (!Number.isInteger(o.payload) || o.payload < STAMP || o.payload > 1 << 20) fail(`--payload must be in ${STAMP}..${1 << 20}`);
  if (!(o.duration >= 0.1 && o.duration <= 600) || !(o.warmup >= 0 && o.warmup <= 60)) fail('--duration must be in 0.1..600 and --warmup in 0..60');
  return o;
}

const nowUs = () => Math.round(performance.now() * 1000);

async function run(o) {
  const filler = Buffer.alloc(o.payload - STAMP, 'n');
  const cpu = new CpuWindow(o.brokerPid, o.workerPids);
  const latencies = [];
  let errors = 0;
  let firstError = '';
  let inFlight = 0;
  let seq = 0;
  const client = new Client({ broker: o.broker, logger: { warn: (m) => process.stderr.write(`${m}\n`) } });

  const start = nowUs();
  const from = start + Math.round(o.warmup * 1e6);
  const to = from + Math.round(o.duration * 1e6);
  const timers = [
    setTimeout(() => cpu.open(), (from - start) / 1000),
    setTimeout(() => cpu.close(), (to - start) / 1000),
  ];

  async function lane() {
    for (;;) {
      const sent = nowUs();
      if (sent >= to) return; // the window is over: no more tasks
      const payload = Buffer.allocUnsafe(o.payload);
      payload.writeUIntLE(seq++, 0, 6);
      payload.writeUInt16LE(0, 6);
      payload.writeUIntLE(sent, 8, 6);
      payload.writeUInt16LE(0, 14);
      filler.copy(payload, STAMP);
      inFlight += 1;
      let result;
      try {
        result = await client.call(o.service, payload);
      } catch (err) {
        inFlight -= 1;
        errors += 1;
        firstError ||= `${err.name}: ${err.message}`;
        continue;
      }
      const now = nowUs();
      inFlight -= 1;
      const echo = result.payload;
      if (echo.length !== o.payload || echo.readUIntLE(8, 6) !== sent || !echo.subarray(STAMP).equals(filler)) {
        errors += 1;
        firstError ||= 'a reply that is not the payload sent';
        continue;
      }
      if (now >= from && now < to) latencies.push(now - sent);
    }
  }

  const lanes = Promise.all(Array.from({ length: o.window }, () => lane()));
  let drainTimer;
  const drained = new Promise((resolve) => {
    drainTimer = setTimeout(resolve, (to - start) / 1000 + DRAIN_MS);
  });
  await Promise.race([lanes, drained]);
  clearTimeout(drainTimer);
  for (const t of timers) clearTimeout(t);
  cpu.close();
  const unanswered = inFlight;
  await client.close();
  latencies.sort((a, b) => a - b);
  return {
    tasks_per_s: latencies.length / o.duration,
    p50_us: percentile(latencies, 50),
    p99_us: percentile(latencies, 99),
    max_us: latencies.length ? latencies[latencies.length - 1] : 0,
    tasks: latencies.length,
    errors: errors + unanswered,
    unanswered,
    first_error: firstError,
    seconds: o.duration,
    cpu_pct: cpu.result,
    config: {
      client: 'node',
      broker: o.broker,
      service: o.service,
      clients: 1,
      window: o.window,
      payload: o.payload,
      duration_s: o.duration,
      warmup_s: o.warmup,
    },
  };
}

const o = options();
const report = await run(o);
if (o.json) {
  process.stdout.write(`${JSON.stringify(report)}\n`);
} else {
  process.stdout.write(
    `node client, 1 x ${o.window} in flight, ${o.payload} B: ${report.tasks_per_s.toFixed(0)} tasks/s, ` +
      `p50 ${report.p50_us} us, p99 ${report.p99_us} us, ${report.errors} errors\n`,
  );
}
if (report.errors) process.stderr.write(`load.mjs: ${report.errors} errors; first: ${report.first_error}\n`);
process.exit(report.errors ? 1 : 0);
