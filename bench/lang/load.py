#!/usr/bin/python3
"""load.py — the closed-loop load of yard-bench --load-only, through the
Python client library (clients/python, package ``yard``).

One process, one ``yard.Client``, ``--window`` tasks in flight. Every
payload carries a sequence number and its submit time (the first 16 bytes,
as yard-bench stamps them); latency runs from just before ``submit`` to the
moment the caller's thread has the finished future in hand. The loop is the
efficient use of the library's public API, the one yard-bench's C loop
mirrors: ``Client.submit`` returns a future at once; a done callback (run
on the client's I/O thread) hands the future to this thread through a
queue; this thread blocks for one, takes every other one already there,
checks and times them, and submits that many again.

Measured: the ``--duration`` seconds after a ``--warmup`` (0.5 s). A reply
that is not an intact echo, a task that fails, or one still unanswered 5 s
after the window closed counts as an error. Prints one JSON object with
--json (the keys of yard-bench --load-only --json: tasks_per_s, p50_us,
p99_us, tasks, errors, ...), else a line of text.

    /usr/bin/python3 bench/lang/load.py --broker tcp://127.0.0.1:5555 \\
        --service echo --window 16 --payload 64 --duration 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in bench/lang

import yard  # noqa: E402
from _stats import CpuWindow, percentile  # noqa: E402

STAMP = struct.Struct("<Qq")  # sequence, submit time (us): yard-bench's stamp
DRAIN_S = 5.0  # bound on collecting the last replies


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", required=True, help="the broker's tasks endpoint")
    ap.add_argument("--service", required=True, help="a service whose workers echo")
    ap.add_argument("--window", type=int, default=16, help="tasks in flight (default 16)")
    ap.add_argument("--payload", type=int, default=64, help="bytes per task, >= 16 (default 64)")
    ap.add_argument("--duration", type=float, default=3.0, help="measured seconds (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring (0.5)")
    ap.add_argument("--broker-pid", type=int, default=0, help="report the broker's CPU")
    ap.add_argument("--worker-pid", type=int, action="append", default=[],
                    help="report the workers' CPU (repeatable, summed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if not 1 <= args.window <= 4096:
        ap.error("--window must be in 1..4096")
    if not STAMP.size <= args.payload <= 1 << 20:
        ap.error(f"--payload must be in {STAMP.size}..{1 << 20}")
    if not 0.1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        ap.error("--duration must be in 0.1..600 and --warmup in 0..60")
    return args


def run(args: argparse.Namespace) -> dict:
    filler = b"p" * (args.payload - STAMP.size)
    size = args.payload
    pack, unpack_from = STAMP.pack, STAMP.unpack_from
    clock_us = time.monotonic_ns
    ready: queue.SimpleQueue = queue.SimpleQueue()
    put = ready.put
    cpu = CpuWindow(args.broker_pid, tuple(args.worker_pid))
    latencies: list[int] = []
    record = latencies.append
    errors = 0
    first_error = ""
    seq = 0
    with yard.Client(args.broker) as client:
        submit = client.submit
        service = args.service

        def send(n: int) -> None:
            nonlocal seq
            for _ in range(n):
                future = submit(service, pack(seq, clock_us() // 1000) + filler)
                future.add_done_callback(put)
                seq += 1

        start = time.monotonic()
        measure_from = start + args.warmup
        measure_to = measure_from + args.duration
        # The window bounds in the clock of the stamps (us).
        from_us = int(measure_from * 1e6)
        to_us = int(measure_to * 1e6)
        in_flight = args.window
        send(args.window)
        opened = False
        drain_until = None
        while in_flight:
            try:
                done = [ready.get(timeout=0.1)]
            except queue.Empty:
                done = []
            try:
                while True:
                    done.append(ready.get_nowait())
            except queue.Empty:
                pass
            for future in done:
                now = clock_us() // 1000
                try:
                    payload = future.result().payload
                except yard.YardError as exc:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                    continue
                if len(payload) != size or payload[STAMP.size:] != filler:
                    errors += 1
                    first_error = first_error or "a reply that is not the payload sent"
                    continue
                sent = unpack_from(payload)[1]
                if from_us <= now < to_us:
                    record(now - sent)
            in_flight -= len(done)
            now_s = time.monotonic()
            if not opened and now_s >= measure_from:
                cpu.open(now_s)
                opened = True
            if now_s < measure_to:
                if done:
                    send(len(done))
                    in_flight += len(done)
                continue
            cpu.close(now_s)
            if drain_until is None:
                drain_until = now_s + DRAIN_S
            elif now_s >= drain_until:
                break
    latencies.sort()
    tasks = len(latencies)
    return {
        "tasks_per_s": tasks / args.duration,
        "p50_us": percentile(latencies, 50),
        "p99_us": percentile(latencies, 99),
        "max_us": latencies[-1] if latencies else 0,
        "tasks": tasks,
        "errors": errors + in_flight,
        "unanswered": in_flight,
        "first_error": first_error,
        "seconds": args.duration,
        "cpu_pct": cpu.result,
        "config": {"client": "python", "broker": args.broker, "service": args.service,
                   "clients": 1, "window": args.window, "payload": args.payload,
                   "duration_s": args.duration, "warmup_s": args.warmup},
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"python client, 1 x {args.window} in flight, {args.payload} B: "
              f"{report['tasks_per_s']:.0f} tasks/s, p50 {report['p50_us']} us, "
              f"p99 {report['p99_us']} us, {report['errors']} errors")
    if report["errors"]:
        print(f"load.py: {report['errors']} errors; first: {report['first_error']}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
