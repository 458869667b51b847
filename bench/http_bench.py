#!/usr/bin/python3
"""http_bench.py — the admin API under load (issue 7, part 6).

Starts its own yard-broker, two yard-worker echo workers and yard-health on
free loopback ports, then:

  1. runs wrk (Debian's `wrk`) against GET /metrics, /v1/metrics/performance,
     /v1/workers and /v1/health, each for --seconds, and reports requests/s
     and latency percentiles;
  2. measures the event rate the SSE stream sustains: a publisher floods the
     bus with events (pre-encoded PUBLISH messages of 256 events on a DEALER)
     while one SSE reader (curl -N, counted in big reads) takes
     /v1/events/stream?type=bench.; it reports events published (the
     broker's count), events delivered to yard-health, events the SSE reader
     got, and the drops it was told about.

Everything is bounded in time and stopped by PID. Prints a table, or one
JSON object with --json.

    /usr/bin/python3 bench/http_bench.py --bin build/bin [--seconds 5] [--json]
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

API_KEY = "bench-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    def __init__(self, logdir):
        self.procs = []
        self.logdir = logdir

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.logdir, name + ".log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                             env=env or os.environ.copy())
        self.procs.append((p, log))
        return p

    def stop_all(self):
        for p, _ in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p, log in reversed(self.procs):
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()


def http_get(port, path, key=API_KEY, timeout=5):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n"
                   "Connection: close\r\n\r\n" % (path, key)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("http_bench: timed out waiting for %s" % what)


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    for q in ("50", "90", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % q, text, re.M)
        if m:
            v = float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[m.group(2)]
            out["p%s_us" % q] = round(v)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["errors"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    return out


def run_wrk(port, path, seconds, threads, conns):
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
            "--latency", "--timeout", "5s", "-H", "X-API-Key: " + API_KEY,
            "http://127.0.0.1:%d%s" % (port, path)]
    p = subprocess.run(argv, capture_output=True, timeout=seconds + 30)
    r = parse_wrk(p.stdout.decode())
    r["path"] = path
    return r


def publisher(endpoint, stop, counter):
    """Floods the bus: the same PUBLISH message of 256 events, again and
    again, on a DEALER (as a client), as fast as the socket takes it."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.SNDHWM, 1000)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    # A PUBLISH body's payload is any one msgpack value: a small map here.
    body = msgpack.packb({"type": "bench.tick", "source": "http_bench",
                          "payload": {"n": 1, "pad": "x" * 32}},
                         use_bin_type=True)
    header = b"YC\x01\x10"
    frames = [header] + [body] * 256
    while not stop.is_set():
        try:
            s.send_multipart(frames, flags=zmq.NOBLOCK)
            counter[0] += 256
        except zmq.Again:
            time.sleep(0.0005)
    s.close()


def sse_reader(port, seconds, done, result):
    """One SSE client: counts event frames and the drops it is told of,
    until the publisher is done and the stream has been idle for 1 s (at
    most seconds + 20 s in all)."""
    argv = ["curl", "-sN", "--max-time", str(seconds + 20), "-H",
            "X-API-Key: " + API_KEY,
            "http://127.0.0.1:%d/v1/events/stream?type=bench." % port]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE)
    events = dropped = 0
    tail = b""
    t_first = t_last = None
    fd = p.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        now = time.monotonic()
        if not ready:
            if done.is_set() and t_last is not None and now - t_last > 1.0:
                break
            if p.poll() is not None:
                break
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        data = tail + chunk
        n = data.count(b"\nevent: bench.")
        if n:
            t_first = t_first or now
            t_last = now
        events += n
        for m in re.finditer(rb"event: dropped\ndata: (\{[^\n]*\})", data):
            try:
                dropped += json.loads(m.group(1)).get("dropped", 0)
            except ValueError:
                pass
        tail = data[-64:]
    p.terminate()
    p.wait()
    result.update(events=events, dropped=dropped,
                  span_s=(t_last - t_first) if t_first and t_last else 0)


def broker_stats(endpoint):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    s.send_multipart([b"YC\x01\x01", msgpack.packb(
        {"id": "st", "service": "yard.admin", "payload": b"stats"},
        use_bin_type=True)])
    if not s.poll(5000):
        return {}
    frames = s.recv_multipart()
    s.close()
    r = msgpack.unpackb(frames[1], raw=False)
    return json.loads(r["payload"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not shutil.which("wrk") or not shutil.which("curl"):
        raise SystemExit("http_bench: needs wrk and curl (apt-get install wrk curl)")

    bport, eport, hport = free_port(), free_port(), free_port()
    broker = "tcp://127.0.0.1:%d" % bport
    events = "tcp://127.0.0.1:%d" % eport
    logdir = tempfile.mkdtemp(prefix="yard-http-bench-")
    procs = Procs(logdir)
    env = dict(os.environ, YARD_LOG_LEVEL="warn", YARD_API_KEY=API_KEY)
    results = {"seconds": a.seconds, "threads": a.threads,
               "connections": a.connections, "http": []}
    try:
        procs.start("broker", [os.path.join(a.bin, "yard-broker"), "--broker",
                               broker, "--events", events], env)
        for i in range(2):
            procs.start("worker%d" % i, [os.path.join(a.bin, "yard-worker"),
                                         "--broker", broker, "--service",
                                         "echo", "--handler", "echo"], env)
        procs.start("health", [os.path.join(a.bin, "yard-health"), "--broker",
                               broker, "--events", events, "--http",
                               "127.0.0.1:%d" % hport], env)
        wait_for(lambda: http_get(hport, "/v1/health")[0] == 200, 15,
                 "yard-health to answer")
        wait_for(lambda: len(json.loads(http_get(hport, "/v1/workers")[1])
                             ["workers"]) >= 3, 15, "three workers listed")
        for path in ("/metrics", "/v1/metrics/performance", "/v1/workers",
                     "/v1/health"):
            results["http"].append(run_wrk(hport, path, a.seconds, a.threads,
                                           a.connections))

        # SSE: flood the bus while one reader follows the stream.
        before = broker_stats(broker).get("events", {})
        sse = {}
        stop = threading.Event()
        reader = threading.Thread(target=sse_reader,
                                  args=(hport, a.seconds, stop, sse))
        reader.start()
        time.sleep(0.5)  # the reader is connected
        sent = [0]
        pub = threading.Thread(target=publisher, args=(broker, stop, sent))
        t0 = time.monotonic()
        pub.start()
        time.sleep(a.seconds)
        stop.set()
        pub.join()
        elapsed = time.monotonic() - t0
        reader.join(a.seconds + 30)
        after = broker_stats(broker).get("events", {})
        _, hb = http_get(hport, "/v1/health")
        missed = json.loads(hb).get("events_missed", 0)
        published = after.get("published", 0) - before.get("published", 0)
        delivered = after.get("delivered", 0) - before.get("delivered", 0)
        results["sse"] = {
            "seconds": round(elapsed, 2),
            "sent_by_publisher": sent[0],
            "published": published,
            "published_per_s": round(published / elapsed),
            "delivered_to_subscribers": delivered,
            "sse_events": sse.get("events", 0),
            "sse_span_s": round(sse.get("span_s", 0), 2),
            "sse_events_per_s": round(sse.get("events", 0) /
                                      max(sse.get("span_s", 0), 0.001)),
            "sse_dropped_reported": sse.get("dropped", 0),
            "health_events_missed": missed,
        }
    finally:
        procs.stop_all()
    if a.json:
        print(json.dumps(results))
        return
    print("yard-health admin API under wrk (%d threads, %d connections, %d s "
          "each; 2 echo workers registered)" % (a.threads, a.connections,
                                               a.seconds))
    print("%-26s %10s %9s %9s %9s %7s" % ("endpoint", "req/s", "p50", "p90",
                                          "p99", "non-2xx"))
    for r in results["http"]:
        print("%-26s %10.0f %7.0fus %7.0fus %7.0fus %7d" % (
            r["path"], r["rps"] or 0, r.get("p50_us", 0), r.get("p90_us", 0),
            r.get("p99_us", 0), r["errors"]))
    s = results["sse"]
    print("\nSSE stream, one reader, bus flooded for %.1f s:" % s["seconds"])
    print("  published %d events (%d/s); the broker delivered %d copies to "
          "subscribers" % (s["published"], s["published_per_s"],
                           s["delivered_to_subscribers"]))
    print("  the SSE reader got %d events over %.1f s (%d/s sustained); drops "
          "it was told of: %d; events yard-health missed on the bus: %d"
          % (s["sse_events"], s["sse_span_s"], s["sse_events_per_s"],
             s["sse_dropped_reported"], s["health_events_missed"]))


if __name__ == "__main__":
    sys.exit(main())
