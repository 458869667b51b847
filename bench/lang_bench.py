#!/usr/bin/python3
"""lang_bench.py — the Python and Node libraries next to the C client, in one run.

One yard-broker on free loopback ports serves four services, each with its
own workers, all started once and kept for the whole run:

  bench-c          2 x `yard-worker --handler echo --capacity 64 --threads 0`
  bench-c1         1 x the same C echo worker (the reference for one worker)
  bench-py         1 x bench/lang/echo_worker.py (the Python library; the
                   handler on handler threads, the library's default)
  bench-py-inline  1 x bench/lang/echo_worker.py --inline (the handler on
                   the worker's I/O thread: Worker(inline=True))
  bench-node       1 x bench/lang/echo_worker.mjs (the Node library)

Then, in R alternating rounds (default 3; forward, then reversed, ...),
each "side" is one load process run for a 0.5 s warm-up and a measured
window of --duration seconds:

  a. clients against bench-c, 1 client process x K in flight, 64-byte
     payloads, K = 1 (latency) and K = 16 (throughput):
       C       yard-bench --load-only
       python  bench/lang/load.py   (futures: Client.submit)
       node    bench/lang/load.mjs  (promises: Client.call)
  b. workers alone on their service, loaded by the C client with 4
     threads x 16 in flight: the C worker (bench-c1), the Python worker
     (threads, and inline) and the Node worker, one process each, all
     with capacity 64;

and the report gives each side's median over the rounds. Then, once:

  c. an open loop from the C client (yard-bench --load-only --rate) at a
     fixed 10,000 tasks/s offered for 5 s against the one Python worker,
     latency counted from when each task was due (no coordinated
     omission): the verdict, on the library's default worker. It passes
     when the achieved rate is within 2 % of the offered rate, p99 < 50 ms
     and nothing failed. The same load then runs against the inline
     worker, for its margin.

CPU: every load program reports, over its measured window, its own CPU
and the broker's and the workers' (from /proc/PID/stat, utime + stime),
as percent of one core.

Every process is started by this script, logs to its own file in a temp
dir, and is stopped by PID (SIGTERM, a bounded wait, SIGKILL) in a
finally block, whatever happens; children also get PR_SET_PDEATHSIG. The
whole run is under a hard time bound.

    /usr/bin/python3 bench/lang_bench.py --bin build/bin          # table, ~2.5 min
    /usr/bin/python3 bench/lang_bench.py --bin build/bin --json   # one JSON object
    /usr/bin/python3 bench/lang_bench.py --bin build/bin --quick  # ~20 s smoke run
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LANG = os.path.join(HERE, "lang")
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))

import yard  # noqa: E402

PYTHON = "/usr/bin/python3"
PORT_RANGE = (20000, 32000)
READY_S = 15.0  # bound on every start-up handshake
DRAIN_S = 5.0  # what a load may take after its window to collect replies
RATE_PASS = {"rate_within": 0.02, "p99_us_below": 50_000}

# name, load program, service, client threads, tasks in flight, what the
# ratio compares with (the side at the same window, or the C worker).
SIDES = [
    ("c_w1", "c", "bench-c", 1, 1, "c_w1"),
    ("python_w1", "python", "bench-c", 1, 1, "c_w1"),
    ("node_w1", "node", "bench-c", 1, 1, "c_w1"),
    ("c_w16", "c", "bench-c", 1, 16, "c_w16"),
    ("python_w16", "python", "bench-c", 1, 16, "c_w16"),
    ("node_w16", "node", "bench-c", 1, 16, "c_w16"),
    ("c_worker", "c", "bench-c1", 4, 16, "c_worker"),
    ("python_worker", "c", "bench-py", 4, 16, "c_worker"),
    ("python_worker_inline", "c", "bench-py-inline", 4, 16, "c_worker"),
    ("node_worker", "c", "bench-node", 4, 16, "c_worker"),
]
LABELS = {
    "c_w1": "C client, 1 in flight",
    "python_w1": "Python client, 1 in flight",
    "node_w1": "Node client, 1 in flight",
    "c_w16": "C client, 16 in flight",
    "python_w16": "Python client, 16 in flight",
    "node_w16": "Node client, 16 in flight",
    "c_worker": "C worker (1 process)",
    "python_worker": "Python worker (1 process)",
    "python_worker_inline": "Python worker, inline",
    "node_worker": "Node worker (1 process)",
}


class BenchError(Exception):
    """The run cannot go on (a process died, a handshake timed out, ...)."""


def note(args: argparse.Namespace, text: str) -> None:
    if args.verbose:
        print(f"lang_bench: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when this script dies, however it dies."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Procs:
    """The run's long-lived children, each with a log file, stopped by PID."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def log(self, name: str) -> str:
        return os.path.join(self.logdir, name + ".log")

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.log(name), "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=ROOT,
                                    preexec_fn=_die_with_parent)
        self.procs.append((name, proc))
        return proc

    def tail(self, name: str, lines: int = 10) -> str:
        try:
            with open(self.log(name), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"{name} (pid {proc.pid}) exited with {proc.returncode}:\n"
                                 f"{self.tail(name)}")

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        """SIGTERM by PID, a bounded wait, then SIGKILL by PID."""
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        """Workers first (newest first), the broker last; each by its PID."""
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5.0
        for _, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def free_port(taken: set[int]) -> int:
    """A port in PORT_RANGE that nothing listens on: checked by binding it."""
    for _ in range(200):
        port = random.randint(*PORT_RANGE)
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise BenchError(f"no free loopback port in {PORT_RANGE[0]}..{PORT_RANGE[1]}")


def stats(client: yard.Client, timeout_s: float = 0.5) -> dict:
    """The broker's stats (admin ``stats``) through the Python client; raises
    TimeoutError (or a YardError) without an answer in ``timeout_s``."""
    future = client.submit("yard.admin", b"stats", timeout_ms=int(timeout_s * 1000) + 1000)
    return json.loads(future.result(timeout=timeout_s).payload)


def start_broker(args: argparse.Namespace, procs: Procs) -> tuple[subprocess.Popen, str]:
    """yard-broker on two free ports; ready once it answers stats. Retried
    with fresh ports if it dies at start (someone took a port meanwhile)."""
    taken: set[int] = set()
    for attempt in range(3):
        endpoint = f"tcp://127.0.0.1:{free_port(taken)}"
        events = f"tcp://127.0.0.1:{free_port(taken)}"
        broker = procs.start(f"broker-{attempt}", [
            os.path.join(args.bin, "yard-broker"), "--broker", endpoint, "--events", events,
            "--log-level", "warn"])
        deadline = time.monotonic() + READY_S
        with yard.Client(endpoint) as client:
            while time.monotonic() < deadline and broker.poll() is None:
                try:
                    stats(client)
                    note(args, f"broker {broker.pid} ready on {endpoint}")
                    return broker, endpoint
                except (yard.YardError, TimeoutError):
                    time.sleep(0.02)
        if broker.poll() is None:
            raise BenchError(f"yard-broker did not answer stats in {READY_S:.0f} s")
        procs.procs.remove((f"broker-{attempt}", broker))
    raise BenchError("yard-broker exited at start three times:\n" + procs.tail("broker-2"))


def wait_workers(args: argparse.Namespace, procs: Procs, endpoint: str,
                 want: dict[str, int]) -> None:
    """Until the broker's stats list every service's workers (the workers'
    handshake with the broker, not a guess about time)."""
    deadline = time.monotonic() + READY_S
    seen: dict[str, int] = {}
    with yard.Client(endpoint) as client:
        while time.monotonic() < deadline:
            procs.check_alive()
            try:
                services = stats(client, 1.0).get("services", {})
            except (yard.YardError, TimeoutError):
                services = {}
            seen = {s: services.get(s, {}).get("workers", 0) for s in want}
            if all(seen[s] >= n for s, n in want.items()):
                note(args, f"workers registered: {seen}")
                return
            time.sleep(0.05)
    raise BenchError(f"workers did not register in {READY_S:.0f} s: {seen} of {want}")


# ---------------------------------------------------------------- loads

def run_load(args: argparse.Namespace, procs: Procs, endpoint: str, kind: str, service: str,
             clients: int, window: int, duration: float, cpu_pids: dict,
             rate: float = 0.0) -> dict:
    """One load process (C, Python or Node); returns its JSON report."""
    pids = ["--broker-pid", str(cpu_pids["broker"])]
    for pid in cpu_pids["workers"]:
        pids += ["--worker-pid", str(pid)]
    common = ["--broker", endpoint, "--service", service, "--window", str(window),
              "--payload", str(args.payload), "--duration", str(duration), "--json", *pids]
    if kind == "c":
        argv = [os.path.join(args.bin, "yard-bench"), "--load-only", "--clients", str(clients),
                *common]
        if rate:
            argv += ["--rate", str(rate)]
    elif kind == "python":
        argv = [PYTHON, os.path.join(LANG, "load.py"), *common]
    else:
        argv = [args.node, os.path.join(LANG, "load.mjs"), *common]
    procs.check_alive()
    limit = duration + 0.5 + DRAIN_S + 30
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, preexec_fn=_die_with_parent)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BenchError(f"{kind} load on {service} did not end in {limit:.0f} s") from None
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"{kind} load on {service} exited {proc.returncode} without a "
                         f"report:\n{err.decode(errors='replace')[-2000:]}") from None
    if proc.returncode != 0 or report.get("errors"):
        report["errors"] = max(report.get("errors", 0), 1)
        print(f"lang_bench: {kind} load on {service}: exit {proc.returncode}, "
              f"{report['errors']} errors: {err.decode(errors='replace').strip()[-500:]}",
              file=sys.stderr)
    procs.check_alive()
    return report


def median_of(reports: list[dict]) -> dict:
    """A side's figures over its rounds: medians, and tasks and errors summed."""
    def med(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    cpu = {}
    for key in ("client", "broker", "workers"):
        cpu[key] = med([(r.get("cpu_pct") or {}).get(key) for r in reports])
    return {
        "tasks_per_s": med([r["tasks_per_s"] for r in reports]),
        "p50_us": med([r["p50_us"] for r in reports]),
        "p99_us": med([r["p99_us"] for r in reports]),
        "tasks": sum(r["tasks"] for r in reports),
        "errors": sum(r["errors"] for r in reports),
        "cpu_pct": cpu,
        "rounds": [{"tasks_per_s": r["tasks_per_s"], "p50_us": r["p50_us"],
                    "p99_us": r["p99_us"]} for r in reports],
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# ---------------------------------------------------------------- the run

def run(args: argparse.Namespace, procs: Procs) -> dict:
    broker, endpoint = start_broker(args, procs)
    c_worker = [os.path.join(args.bin, "yard-worker"), "--handler", "echo", "--capacity", "64",
                "--threads", "0", "--broker", endpoint, "--log-level", "warn", "--service"]
    workers = {
        "bench-c": [procs.start(f"c-worker-{i}", [*c_worker, "bench-c"]) for i in range(2)],
        "bench-c1": [procs.start("c-worker-ref", [*c_worker, "bench-c1"])],
        "bench-py": [procs.start("python-worker", [
            PYTHON, os.path.join(LANG, "echo_worker.py"), "--broker", endpoint,
            "--service", "bench-py", "--capacity", str(args.capacity)])],
        "bench-py-inline": [procs.start("python-worker-inline", [
            PYTHON, os.path.join(LANG, "echo_worker.py"), "--broker", endpoint,
            "--service", "bench-py-inline", "--capacity", str(args.capacity), "--inline"])],
        "bench-node": [procs.start("node-worker", [
            args.node, os.path.join(LANG, "echo_worker.mjs"), "--broker", endpoint,
            "--service", "bench-node", "--capacity", str(args.capacity)])],
    }
    wait_workers(args, procs, endpoint, {s: len(w) for s, w in workers.items()})
    cpu_pids = {s: {"broker": broker.pid, "workers": [w.pid for w in ws]}
                for s, ws in workers.items()}

    per_side: dict[str, list[dict]] = {name: [] for name, *_ in SIDES}
    for i in range(args.rounds):
        order = SIDES if i % 2 == 0 else list(reversed(SIDES))
        for name, kind, service, clients, window, _ in order:
            report = run_load(args, procs, endpoint, kind, service, clients, window,
                              args.duration, cpu_pids[service])
            per_side[name].append(report)
            note(args, f"round {i + 1} {name}: {report['tasks_per_s']:.0f} tasks/s, "
                       f"p50 {report['p50_us']} us, p99 {report['p99_us']} us")
    sides = {}
    for name, *_, ref in SIDES:
        sides[name] = median_of(per_side[name])
    for name, *_, ref in SIDES:
        sides[name]["ratio"] = ratio(sides[name]["tasks_per_s"], sides[ref]["tasks_per_s"])
        sides[name]["p50_ratio"] = ratio(sides[name]["p50_us"], sides[ref]["p50_us"])

    open_loop = {}
    for name, service in (("python_worker", "bench-py"),
                          ("python_worker_inline", "bench-py-inline")):
        note(args, f"open loop: {args.rate:.0f} tasks/s for {args.rate_duration} s "
                   f"against {service}")
        # One C client thread sends on the schedule; up to 256 in flight.
        r = run_load(args, procs, endpoint, "c", service, 1, 256, args.rate_duration,
                     cpu_pids[service], rate=args.rate)
        within = abs(r["tasks_per_s"] - args.rate) <= RATE_PASS["rate_within"] * args.rate
        bounded = r["p99_us"] < RATE_PASS["p99_us_below"]
        open_loop[name] = {
            "offered_per_s": args.rate,
            "tasks_per_s": r["tasks_per_s"],
            "achieved_ratio": r["tasks_per_s"] / args.rate,
            "p50_us": r["p50_us"],
            "p99_us": r["p99_us"],
            "max_us": r["max_us"],
            "tasks": r["tasks"],
            "errors": r["errors"],
            "seconds": args.rate_duration,
            "cpu_pct": r["cpu_pct"],
            "pass": bool(within and bounded and r["errors"] == 0),
        }
    return {
        "config": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": 0.5,
                   "payload": args.payload, "worker_capacity": args.capacity,
                   "rate": args.rate, "rate_duration_s": args.rate_duration,
                   "cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]},
        "sides": sides,
        "open_loop": open_loop,
        # The issue's question, on the library's default worker.
        "verdict_10k": {"pass": open_loop["python_worker"]["pass"],
                        "criteria": {"achieved_within": RATE_PASS["rate_within"],
                                     "p99_us_below": RATE_PASS["p99_us_below"], "errors": 0}},
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(report: dict) -> None:
    cfg = report["config"]
    print(f"Yard: the Python and Node libraries next to the C client (one broker, "
          f"{cfg['payload']} B payloads,\n{cfg['rounds']} rounds of {cfg['duration_s']} s "
          f"per side after a 0.5 s warm-up; medians; {cfg['cpus']} CPUs, "
          f"load average {cfg['loadavg']:.1f} at the end)\n")
    head = (f"{'side':<30} {'tasks/s':>9} {'p50 us':>8} {'p99 us':>8} {'ratio':>7} "
            f"{'client%':>8} {'broker%':>8} {'worker%':>8}")
    groups = [
        ("clients against 2 C echo workers (1 client process; ratio: tasks/s over the C "
         "client's at the same window)", ["c_w1", "python_w1", "node_w1",
                                          "c_w16", "python_w16", "node_w16"]),
        ("one worker process alone on its service, C client 4 threads x 16 in flight "
         "(ratio: over the C worker's)", ["c_worker", "python_worker", "python_worker_inline",
                                          "node_worker"]),
    ]
    for title, names in groups:
        print(title)
        print(head)
        for name in names:
            s = report["sides"][name]
            cpu = s["cpu_pct"]
            print(f"{LABELS[name]:<30} {fmt(s['tasks_per_s'], '9,.0f')} "
                  f"{fmt(s['p50_us'], '8.0f')} {fmt(s['p99_us'], '8.0f')} "
                  f"{fmt(s['ratio'], '6.2f')}x {fmt(cpu['client'], '7.0f')}% "
                  f"{fmt(cpu['broker'], '7.0f')}% {fmt(cpu['workers'], '7.0f')}%")
        print()
    loops = report["open_loop"]
    first = loops["python_worker"]
    print(f"open loop against one Python worker: {first['offered_per_s']:,.0f} tasks/s offered "
          f"for {first['seconds']} s (C client, latency from each task's due time)")
    print(f"{'worker':<30} {'tasks/s':>9} {'p50 us':>8} {'p99 us':>8} {'max us':>8} "
          f"{'errors':>7} {'worker%':>8} {'broker%':>8} {'client%':>8}  verdict")
    for name, t in loops.items():
        cpu = t["cpu_pct"] or {}
        print(f"{LABELS[name]:<30} {t['tasks_per_s']:9,.0f} {t['p50_us']:8} {t['p99_us']:8} "
              f"{t['max_us']:8} {t['errors']:7} {fmt(cpu.get('workers'), '7.0f')}% "
              f"{fmt(cpu.get('broker'), '7.0f')}% {fmt(cpu.get('client'), '7.0f')}%  "
              f"{'PASS' if t['pass'] else 'FAIL'}")
    print(f"verdict (the default worker): {'PASS' if report['verdict_10k']['pass'] else 'FAIL'}"
          f" (achieved within 2 % of offered, p99 < {RATE_PASS['p99_us_below'] // 1000} ms, "
          f"no errors)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Yard's Python and Node libraries next to the C client, in one run.")
    ap.add_argument("--bin", default=os.environ.get("YARD_BIN", os.path.join(ROOT, "build", "bin")),
                    help="where yard-broker, yard-worker and yard-bench are "
                         "(default: $YARD_BIN, else build/bin)")
    ap.add_argument("--node", default=shutil.which("node") or "node", help="the node binary")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, the medians reported (3)")
    ap.add_argument("--duration", type=float, default=3.0,
                    help="measured seconds per side and round (3)")
    ap.add_argument("--payload", type=int, default=64, help="bytes per task (64)")
    ap.add_argument("--capacity", type=int, default=64,
                    help="capacity of the Python and Node echo workers (64)")
    ap.add_argument("--rate", type=float, default=10_000.0,
                    help="tasks/s offered to the Python worker in the open loop (10000)")
    ap.add_argument("--rate-duration", type=float, default=5.0,
                    help="measured seconds of the open loop (5)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of about 20 s: 1 round of 1 s, open loop for 2 s")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--verbose", action="store_true", help="progress on stderr")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with the logs")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.rate_duration = 1, 1.0, 2.0
    if not 1 <= args.rounds <= 20 or not 0.2 <= args.duration <= 60 \
            or not 0.5 <= args.rate_duration <= 60 or not 16 <= args.payload <= 65536 \
            or not 1 <= args.capacity <= 10000 or not 1 <= args.rate <= 1e6:
        ap.error("a value is out of range")
    for name in ("yard-broker", "yard-worker", "yard-bench"):
        if not os.access(os.path.join(args.bin, name), os.X_OK):
            ap.error(f"{name} is not in {args.bin} (build first, or pass --bin)")
    if not shutil.which(args.node):
        ap.error(f"no node binary ({args.node})")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # The hard bound: every slice, the open loop, start-up and slack.
    budget = 60 + args.rounds * len(SIDES) * (args.duration + 4) + 2 * (args.rate_duration + 10)

    def on_signal(signum: int, _frame: object) -> None:
        raise BenchError("time bound reached" if signum == signal.SIGALRM
                         else f"stopped by signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(signum, on_signal)
    signal.alarm(int(budget))
    logdir = tempfile.mkdtemp(prefix="lang-bench.")
    procs = Procs(logdir)
    ok = False
    try:
        report = run(args, procs)
        ok = all(s["errors"] == 0 for s in report["sides"].values()) \
            and all(t["errors"] == 0 for t in report["open_loop"].values())
    except BenchError as exc:
        print(f"lang_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        procs.stop_all()
        if ok and not args.keep:
            shutil.rmtree(logdir, ignore_errors=True)
        else:
            print(f"lang_bench: logs kept in {logdir}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    if not ok:
        print("lang_bench: some loads had errors (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
