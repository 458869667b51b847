// echo_worker.mjs — an echo worker in the Node library (clients/node,
// imported by relative path): the result of every task is its payload, as
// `yard-worker --handler echo` answers. One process, one service,
// --capacity tasks held at once. Serves until SIGTERM or SIGINT, then
// drains (the library's graceful stop) and exits 0.
//
//   node bench/lang/echo_worker.mjs --broker tcp://127.0.0.1:5555 \
//     --service echo-node --capacity 64

import { parseArgs } from 'node:util';

import { Worker } from '../../clients/node/src/index.js';

const { values } = parseArgs({
  options: {
    broker: { type: 'string' },
    service: { type: 'string' },
    capacity: { type: 'string', default: '64' },
    name: { type: 'string', default: `node-echo-${process.pid}` },
  },
});
const capacity = Number(values.capacity);
if (!values.broker || !values.service || !Number.isInteger(capacity) || capacity < 1) {
  process.stderr.write('echo_worker.mjs: --broker and --service are required, --capacity >= 1\n');
  process.exit(2);
}

const worker = new Worker({ broker: values.broker, capacity, name: values.name, graceMs: 2000 });
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, async () => {
    if (stopping) process.exit(1); // a second signal: at once
    stopping = true;
    await worker.stop();
    process.exit(0);
  });
}
await worker.handle(values.service, (job) => job.payload);
