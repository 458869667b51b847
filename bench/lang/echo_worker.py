#!/usr/bin/python3
"""echo_worker.py — an echo worker in the Python library (clients/python):
the result of every task is its payload, the way `yard-worker --handler
echo` answers. One process, one service, ``--capacity`` tasks held at once,
each run on a handler thread (the library's default), or with ``--inline``
on the worker's I/O thread (``Worker(inline=True)``, for fast handlers).

Serves until SIGTERM or SIGINT, then drains (the library's graceful stop)
and exits 0.

    /usr/bin/python3 bench/lang/echo_worker.py --broker tcp://127.0.0.1:5555 \\
        --service echo-py --capacity 64
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))

import yard  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", required=True, help="the broker's tasks endpoint")
    ap.add_argument("--service", required=True, help="the service to serve")
    ap.add_argument("--capacity", type=int, default=64, help="tasks held at once (default 64)")
    ap.add_argument("--name", default=f"py-echo-{os.getpid()}", help="name in the broker's stats")
    ap.add_argument("--inline", action="store_true",
                    help="run the handler on the I/O thread (Worker(inline=True)), "
                         "not on handler threads")
    args = ap.parse_args(argv)

    worker = yard.Worker(args.broker, name=args.name, capacity=args.capacity, grace_ms=2000,
                         inline=args.inline)

    @worker.handler(args.service)
    def echo(job: yard.Job) -> bytes:
        return job.payload

    worker.run()  # SIGTERM / SIGINT: drain, then return
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
