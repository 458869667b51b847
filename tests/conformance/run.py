#!/usr/bin/python3
"""Runs the conformance scenarios (scenarios.json) for every pairing of a
client implementation with a worker implementation, each against a fresh
real broker, and prints the matrix. The contract: README.md beside this file.

    run.py --bin build/bin [--clients c,python,node] [--workers ...]
           [--scenario NAME]... [--jobs N] [-v]

Exit status 0 when every cell passed, 1 when any failed, 2 on bad usage.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import yardwire  # noqa: E402

SERVICE = "conformance"
SHORT = {"c": "c", "python": "py", "node": "node"}


def implementations(bin_dir):
    """name -> argv prefix of its runner (the mode word comes next)."""
    return {
        "c": [str(bin_dir / "yard-conformance")],
        "python": ["/usr/bin/python3", str(HERE / "python" / "runner.py")],
        "node": ["node", str(HERE / "node" / "runner.js")],
    }


_ports_lock = threading.Lock()
_ports_taken = set()


def free_port():
    """A free loopback port below the ephemeral range, not handed out
    before in this run (cells run in parallel)."""
    rng = random.Random()
    with _ports_lock:
        for _ in range(500):
            port = rng.randrange(20000, 32000)
            if port in _ports_taken:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                s.close()
            _ports_taken.add(port)
            return port
    raise RuntimeError("no free loopback port")


def substitute(value, names):
    """Replaces {service}, {worker}, {marker} in every string of value."""
    if isinstance(value, str):
        for k, v in names.items():
            value = value.replace("{%s}" % k, v)
        return value
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    return value


def program_budget(steps):
    """Seconds the client may take: every wait and sleep, plus slack."""
    ms = 0
    for s in steps:
        ms += s.get("timeout_ms", 0) + s.get("ms", 0)
    return ms / 1000.0 + 20.0


class Cell:
    """One scenario run by one client implementation against one worker
    implementation: its processes, its logs, its verdict."""

    def __init__(self, args, impls, scenario, client, worker, logroot):
        self.args = args
        self.impls = impls
        self.scenario = scenario
        self.client = client
        self.worker = worker
        self.logdir = Path(tempfile.mkdtemp(prefix="%s-%s-%s-" % (
            scenario["name"], client, worker), dir=logroot))
        self.procs = []  # (name, Popen)
        self.failures = []
        self.seconds = 0.0

    # -- processes --
    def spawn(self, name, argv, stdin=None):
        out = open(self.logdir / (name + ".out"), "wb")
        err = open(self.logdir / (name + ".err"), "wb")
        p = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err,
                             cwd=str(REPO), start_new_session=True)
        out.close()
        err.close()
        self.procs.append((name, p))
        return p

    def log_tail(self, name, n=15):
        try:
            lines = (self.logdir / (name + ".err")).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("      " + line for line in lines[-n:])

    def stats(self, admin):
        r = admin.call(yardwire.ADMIN_SERVICE, b"stats", timeout=2.0)
        if r is None or r.get("status") != "ok":
            return None
        return json.loads(yardwire.as_bytes(r.get("payload")).decode())

    def wait_workers(self, admin, service, n, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.stats(admin)
            if st and st.get("services", {}).get(service, {}).get("workers") == n:
                return True
            for name, p in self.procs:
                if p.poll() is not None and name != "broker":
                    raise RuntimeError("%s exited with %s before registering:\n%s"
                                       % (name, p.returncode, self.log_tail(name)))
            time.sleep(0.05)
        raise RuntimeError("%d worker(s) of %s not registered within %.0f s"
                           % (n, service, timeout))

    def start_broker(self, ctx):
        for _ in range(3):
            port, events = free_port(), free_port()
            self.endpoint = "tcp://127.0.0.1:%d" % port
            self.events = "tcp://127.0.0.1:%d" % events
            argv = [str(self.args.bin / "yard-broker"), "--broker", self.endpoint,
                    "--events", self.events, "--log-level", "warn"]
            broker = self.spawn("broker", argv + self.scenario.get("broker_args", []))
            admin = yardwire.Client(ctx, self.endpoint)
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and broker.poll() is None:
                if self.stats(admin) is not None:
                    return admin
            admin.close()
            if broker.poll() is None:
                raise RuntimeError("broker not ready within 10 s")
            if "Address already in use" not in self.log_tail("broker"):
                raise RuntimeError("broker exited with %s:\n%s"
                                   % (broker.returncode, self.log_tail("broker")))
            self.procs.remove(("broker", broker))
        raise RuntimeError("could not bind a broker on free ports")

    def stop_all(self):
        """Workers get SIGTERM and must stop by themselves (exit 0) within
        5 s; the broker and yard-cache are simply killed."""
        workers = [(n, p) for n, p in self.procs if n.startswith("worker")]
        for _, p in workers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for name, p in workers:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.failures.append("%s did not stop within 5 s of SIGTERM" % name)
                continue
            killed_on_purpose = p.returncode == -signal.SIGKILL and self.scenario["name"] == "retry_killed_worker"
            if p.returncode != 0 and not killed_on_purpose:
                self.failures.append("%s exited with %s:\n%s" % (name, p.returncode, self.log_tail(name)))
        for _, p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # -- the run --
    def run(self):
        t0 = time.monotonic()
        ctx = zmq.Context()
        admin = None
        try:
            admin = self.start_broker(ctx)
            self.run_scenario(admin)
        except Exception as exc:  # a cell fails; the others go on
            self.failures.append("%s: %s" % (type(exc).__name__, exc))
        finally:
            if admin is not None:
                admin.close()
            self.stop_all()
            ctx.term()
            self.seconds = time.monotonic() - t0
        return self

    def run_scenario(self, admin):
        sc = self.scenario
        names = {"service": SERVICE, "worker": self.worker,
                 "marker": str(self.logdir / "crash-marker")}
        if sc.get("cache"):
            self.spawn("cache", [str(self.args.bin / "yard-cache"), "--no-l2",
                                 "--broker", self.endpoint, "--events", self.events])
            self.wait_workers(admin, "yard.cache", 1)
        if sc.get("rogue"):
            self.spawn("worker-rogue", ["/usr/bin/python3", str(HERE / "rogue_worker.py"),
                                        "--broker", self.endpoint, "--service", SERVICE,
                                        "--mode", sc["rogue"]])
            self.wait_workers(admin, SERVICE, 1)
        else:
            n = sc.get("workers", 1)
            for i in range(n):
                self.spawn("worker%d" % (i + 1), self.impls[self.worker] + [
                    "worker", "--broker", self.endpoint, "--service", SERVICE,
                    "--capacity", str(sc.get("capacity", 4)), "--lang", self.worker])
            if n:
                self.wait_workers(admin, SERVICE, n)

        steps = substitute(sc["steps"], names)
        program = json.dumps({"steps": steps}).encode()
        budget = program_budget(steps)
        argv = self.impls[self.client] + ["client", "--broker", self.endpoint,
                                          "--events", self.events]
        with open(self.logdir / "program.json", "wb") as f:
            f.write(program)
        with open(self.logdir / "program.json", "rb") as stdin:
            p = self.spawn("client", argv, stdin=stdin)
            try:
                p.wait(budget)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.failures.append("client did not finish within %.0f s" % budget)
        if p.returncode != 0 and not self.failures:
            self.failures.append("client exited with %s:\n%s" % (p.returncode, self.log_tail("client")))
        self.check(steps, (self.logdir / "client.out").read_text(errors="replace"))

    def check(self, steps, out):
        obs = {}
        for line in out.splitlines():
            if not line.strip():
                continue
            try:
                o = json.loads(line)
            except ValueError:
                self.failures.append("client printed a line that is not JSON: %r" % line[:200])
                continue
            if not isinstance(o, dict) or not isinstance(o.get("step"), int):
                self.failures.append("client printed an observation without a step: %r" % line[:200])
                continue
            obs[o["step"]] = o
        order = {o["task"]: o.get("order") for o in obs.values() if "task" in o}
        for i, step in enumerate(steps):
            want = step.get("expect")
            if want is None:
                continue
            got = obs.get(i)
            label = "step %d (%s %s)" % (i, step["do"], step.get("task", step.get("sub", step.get("type", ""))))
            if got is None:
                self.failures.append("%s: no observation" % label)
                continue
            for problem in compare(want, got, order):
                self.failures.append("%s: %s; observed %s" % (label, problem, json.dumps(got)[:400]))


def compare(want, got, order):
    """The ways an observation misses its expectation (empty: it meets it)."""
    problems = []
    for key in ("status", "payload", "attempts", "cached", "type", "published"):
        if key in want and got.get(key) != want[key]:
            problems.append("%s is %r, expected %r" % (key, got.get(key), want[key]))
    if "payload_json" in want:
        try:
            parsed = json.loads(got.get("payload") or "")
        except ValueError:
            parsed = None
        if parsed != want["payload_json"]:
            problems.append("payload is %r, expected JSON %r" % (got.get("payload"), want["payload_json"]))
    if "error_contains" in want and want["error_contains"] not in (got.get("error") or ""):
        problems.append("error %r does not contain %r" % (got.get("error"), want["error_contains"]))
    if "attempts_min" in want and not (got.get("attempts") or 0) >= want["attempts_min"]:
        problems.append("attempts %r < %r" % (got.get("attempts"), want["attempts_min"]))
    if "retry_after_ms_min" in want and not (got.get("retry_after_ms") or 0) >= want["retry_after_ms_min"]:
        problems.append("retry_after_ms %r < %r" % (got.get("retry_after_ms"), want["retry_after_ms_min"]))
    for later in want.get("before", []):
        mine, theirs = got.get("order"), order.get(later)
        if not (isinstance(mine, int) and isinstance(theirs, int) and mine < theirs):
            problems.append("order %r is not before %s's %r" % (mine, later, theirs))
    return problems


def main():
    ap = argparse.ArgumentParser(description="Yard conformance suite: every client with every worker.")
    ap.add_argument("--bin", type=Path, default=Path(os.environ.get("YARD_BIN", REPO / "build" / "bin")),
                    help="directory of yard-broker, yard-cache and yard-conformance (YARD_BIN)")
    ap.add_argument("--clients", default="c,python,node", help="client implementations, comma-separated")
    ap.add_argument("--workers", default="c,python,node", help="worker implementations, comma-separated")
    ap.add_argument("--scenario", action="append", default=[], help="run only this scenario (repeatable)")
    ap.add_argument("--jobs", type=int, default=4, help="cells run at once (default 4)")
    ap.add_argument("--keep-logs", action="store_true", help="keep every cell's logs, not only failed ones'")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each cell as it ends")
    args = ap.parse_args()

    impls = implementations(args.bin)
    clients = [c for c in args.clients.split(",") if c]
    workers = [w for w in args.workers.split(",") if w]
    for name in clients + workers:
        if name not in impls:
            ap.error("unknown implementation %r (known: %s)" % (name, ", ".join(impls)))
    for prog in ("yard-broker", "yard-cache") + (("yard-conformance",) if "c" in clients + workers else ()):
        if not os.access(args.bin / prog, os.X_OK):
            ap.error("%s not found in %s: build first (or pass --bin)" % (prog, args.bin))
    if ("node" in clients + workers) and shutil.which("node") is None:
        ap.error("node is not installed (make deps installs it)")
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    scenarios = json.loads((HERE / "scenarios.json").read_text())
    if args.scenario:
        known = {s["name"] for s in scenarios}
        for name in args.scenario:
            if name not in known:
                ap.error("unknown scenario %r" % name)
        scenarios = [s for s in scenarios if s["name"] in args.scenario]

    logroot = Path(tempfile.mkdtemp(prefix="yard-conformance-"))
    cells = [Cell(args, impls, sc, c, w, logroot) for sc in scenarios for c in clients for w in workers]
    t0 = time.monotonic()
    print_lock = threading.Lock()

    def run(cell):
        cell.run()
        if args.verbose or cell.failures:
            with print_lock:
                mark = "ok  " if not cell.failures else "FAIL"
                print("%s %-32s %6s -> %-6s %5.1fs" % (mark, cell.scenario["name"], cell.client,
                                                      cell.worker, cell.seconds), flush=True)
                for f in cell.failures:
                    print("     " + f.replace("\n", "\n     "), flush=True)
                if cell.failures:
                    print("     logs: %s" % cell.logdir, flush=True)
        return cell

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run, cells))

    pairs = [(c, w) for c in clients for w in workers]
    width = max(len(s["name"]) for s in scenarios)
    heads = ["%s>%s" % (SHORT.get(c, c), SHORT.get(w, w)) for c, w in pairs]
    print()
    cw = max(len(h) for h in heads)
    print("client>worker".ljust(width) + "  " + "  ".join(h.rjust(cw) for h in heads))
    by_key = {(cell.scenario["name"], cell.client, cell.worker): cell for cell in cells}
    for sc in scenarios:
        row = []
        for c, w in pairs:
            row.append(("pass" if not by_key[(sc["name"], c, w)].failures else "FAIL").rjust(cw))
        print(sc["name"].ljust(width) + "  " + "  ".join(row))
    failed = [cell for cell in cells if cell.failures]
    print("\n%d cells (%d scenarios x %d pairings), %d failed, %.0f s"
          % (len(cells), len(scenarios), len(pairs), len(failed), time.monotonic() - t0))
    if failed or args.keep_logs:
        print("logs: %s" % logroot)
    else:
        shutil.rmtree(logroot, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
