#!/usr/bin/python3
"""A worker that breaks the protocol on purpose, for the conformance
scenarios that check how everyone else copes (tests/conformance/README.md).

    rogue_worker.py --broker EP --service NAME --mode bad_result

bad_result: registers, then answers every TASK with a RESULT whose status
is one a worker may not send (PROTOCOL.md section 9, row 15). Heartbeats
like a real worker; stops on SIGTERM.
"""

import argparse
import signal
import sys
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import yardwire  # noqa: E402

stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--mode", choices=["bad_result"], required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    ctx = zmq.Context()
    worker = yardwire.RawWorker(ctx, args.broker, args.service, capacity=4)
    try:
        while not stopping:
            m = worker.recv(0.1)
            if m is None or m.cmd != yardwire.TASK:
                continue
            for body in m.bodies:
                if isinstance(body, dict) and isinstance(body.get("job"), int):
                    worker.send(yardwire.RESULT, [{"job": body["job"], "status": "bogus",
                                                   "payload": b"not to be trusted"}])
        worker.disconnect()
    finally:
        worker.close()
        ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
