// Test support: the C binaries started on free loopback ports, stopped by
// PID (SIGTERM, then SIGKILL), and small polling helpers.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
export const BIN_DIR = resolve(PACKAGE_DIR, process.env.YARD_BIN ?? '../../build/bin');

export function bin(name) {
  const path = resolve(BIN_DIR, name);
  if (!existsSync(path)) throw new Error(`${path} not found: build Yard or set YARD_BIN`);
  return path;
}

export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Polls `check` until it returns a truthy value, or fails after `timeoutMs`. */
export async function until(check, { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A logger that keeps what it is given, so tests stay quiet and can look. */
export function recordingLogger() {
  const lines = [];
  return { lines, warn: (line) => lines.push(line) };
}

/** A child process stopped by its PID: SIGTERM, then SIGKILL after `graceMs`. */
export class Proc {
  constructor(path, args, options = {}) {
    this.output = '';
    this.child = spawn(path, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.child.stdout.on('data', (d) => (this.output += d));
    this.child.stderr.on('data', (d) => (this.output += d));
    this.exited = once(this.child, 'exit').then(([code, signal]) => ({ code, signal }));
  }

  get pid() {
    return this.child.pid;
  }

  kill(signal) {
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.child.pid, signal);
  }

  async stop(graceMs = 5000) {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }
}

async function portOpen(port) {
  const socket = createConnection({ port, host: '127.0.0.1' });
  try {
    await once(socket, 'connect');
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

/** A yard-broker on free ports; resolves once it accepts connections. */
export async function startBroker(extraArgs = [], ports = {}) {
  const port = ports.port ?? (await freePort());
  const eventsPort = ports.eventsPort ?? (await freePort());
  const endpoint = `tcp://127.0.0.1:${port}`;
  const events = `tcp://127.0.0.1:${eventsPort}`;
  const proc = new Proc(bin('yard-broker'), ['--broker', endpoint, '--events', events, '--log-level', 'warn', ...extraArgs]);
  await until(async () => (await portOpen(port)) && (await portOpen(eventsPort)), { what: 'yard-broker to listen' });
  return { proc, endpoint, events, port, eventsPort, stop: () => proc.stop() };
}

let cWorkers = 0;

/** A C yard-worker; resolves once the broker lists it in `stats`. */
export async function startCWorker(client, endpoint, { handler, service = handler, capacity = 4 }) {
  const name = `c-worker-${process.pid}-${++cWorkers}`;
  const proc = new Proc(bin('yard-worker'), [
    '--broker', endpoint, '--service', service, '--handler', handler, '--capacity', String(capacity),
    '--name', name, '--log-level', 'warn',
  ]);
  await until(async () => (await client.stats()).workers.some((w) => w.name === name), { what: `yard-worker ${name}` });
  return proc;
}

/** Runs the `yard` CLI to completion. */
export async function runCli(args, { timeoutMs = 15_000 } = {}) {
  const proc = new Proc(bin('yard'), args);
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const { code } = await proc.exited;
  clearTimeout(timer);
  return { code, output: proc.output };
}
