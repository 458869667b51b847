"""Process health reports and the admin "ping" (PROTOCOL.md 5.7, 8.8, 10).

Real yard-broker and yard-worker processes, and raw workers that speak the
wire by hand: a worker's HEARTBEAT carries its report (loop, memory,
objects, uptime, version), the broker keeps the last one per worker and
shows it in stats, and "ping" probes every worker and answers once all
have answered or its timeout passed. A stopped process shows up as a loop
stall once it runs again."""
import json
import signal
import time

import msgpack
import pytest

import yardwire
from conftest import rss_kib
from yardwire import HEARTBEAT, ERROR

ADMIN = yardwire.ADMIN_SERVICE


def ping(client, arg=b"", timeout=15.0):
    r = client.call(ADMIN, b"ping" + (b" " + arg if arg else b""), timeout=timeout)
    assert r is not None, "no answer to ping"
    return r


def ping_json(client, arg=b"", timeout=15.0):
    r = ping(client, arg, timeout)
    assert r["status"] == "ok", r
    return json.loads(yardwire.as_bytes(r["payload"]).decode())


def worker_entry(stats, pid=None, name=None):
    for w in stats["workers"]:
        if (pid is not None and w["pid"] == pid) or (name is not None and w["name"] == name):
            return w
    raise AssertionError("no worker pid=%s name=%s in %s" % (pid, name, stats["workers"]))


def poll(fn, pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if pred(last):
            return last
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s; last: %r" % (what, last))


def test_ping_answers_every_worker(yard):
    b = yard.broker()
    w1 = yard.worker(b, "echo", "echo")
    w2 = yard.worker(b, "other", "echo")
    c = yard.client(b)
    p = ping_json(c)
    assert p["probed"] == 2 and p["answered"] == 2 and p["complete"] is True, p
    assert p["probe"] >= 1 and p["elapsed_us"] < 1_000_000, p
    by_pid = {w["pid"]: w for w in p["workers"]}
    assert set(by_pid) == {w1.pid, w2.pid}, p
    assert by_pid[w1.pid]["service"] == "echo" and by_pid[w2.pid]["service"] == "other"
    for w in p["workers"]:
        assert w["answered"] is True and isinstance(w["rtt_us"], int), w
        assert 0 < w["rtt_us"] < 1_000_000, w
        assert len(w["id"]) >= 2 and all(ch in "0123456789abcdef" for ch in w["id"])
    # The answers also land in stats: a fresh report and the ping's rtt.
    st = b.stats()
    for pid in (w1.pid, w2.pid):
        w = worker_entry(st, pid=pid)
        assert w["ping"]["rtt_us"] == by_pid[pid]["rtt_us"], (w, by_pid[pid])
        assert w["report"]["age_ms"] < 5000, w
    # A second ping is a new probe.
    p2 = ping_json(c)
    assert p2["probe"] == p["probe"] + 1 and p2["complete"], p2


def test_ping_waits_for_a_silent_worker_only_until_its_timeout(yard):
    b = yard.broker()
    w = yard.worker(b, "echo", "echo")
    raw = yard.raw_worker(b, "mute")  # heartbeats, never answers a probe
    b.wait_workers("mute", 1)
    c = yard.client(b)
    t0 = time.monotonic()
    p = ping_json(c, b"300")
    took = time.monotonic() - t0
    assert 0.25 <= took < 3.0, took
    assert p["probed"] == 2 and p["answered"] == 1 and p["complete"] is False, p
    entries = {x["service"]: x for x in p["workers"]}
    assert entries["echo"]["answered"] is True and entries["echo"]["rtt_us"] > 0
    assert entries["mute"]["answered"] is False and entries["mute"]["rtt_us"] is None
    assert p["elapsed_us"] >= 290_000, p
    # The raw worker got the probe: a HEARTBEAT with {probe: N}.
    m, _ = raw.recv_until(2.0, lambda m: m.cmd == HEARTBEAT and m.bodies)
    assert m is not None and m.bodies[0] == {"probe": p["probe"]}, m
    assert w.alive()


def test_raw_worker_answers_a_probe_late_and_both_pings_get_it(yard):
    b = yard.broker()
    raw = yard.raw_worker(b, "slowpoke")
    b.wait_workers("slowpoke", 1)
    c1, c2 = yard.client(b), yard.client(b)
    id1 = c1.submit1(ADMIN, b"ping 3000")
    time.sleep(0.05)
    id2 = c2.submit1(ADMIN, b"ping 3000")
    # The probe reaches the raw worker once, with a number.
    m, _ = raw.recv_until(2.0, lambda m: m.cmd == HEARTBEAT and m.bodies)
    assert m is not None, "no probe reached the raw worker"
    probe = m.bodies[0]["probe"]
    assert isinstance(probe, int) and probe >= 1
    assert list(m.bodies[0]) == ["probe"], m.bodies
    time.sleep(0.3)
    raw.send(HEARTBEAT, [{"probe": probe, "uptime_ms": 42, "version": "raw-1",
                          "rss": 12345678, "objects": {"widgets": 3}}])
    r1, r2 = c1.wait_result(id1, 5), c2.wait_result(id2, 5)
    for r in (r1, r2):
        assert r is not None and r["status"] == "ok", r
        p = json.loads(yardwire.as_bytes(r["payload"]).decode())
        assert p["probe"] == probe and p["complete"] is True, p
        assert p["workers"][0]["rtt_us"] >= 250_000, p
    st = b.stats()
    w = worker_entry(st, name="pytest-raw-worker")
    rep = w["report"]
    assert rep["version"] == "raw-1" and rep["memory"]["rss_bytes"] == 12345678, rep
    assert rep["objects"] == {"widgets": 3}, rep
    assert rep["uptime_ms"] >= 42 and rep["loop"]["stall_age_ms"] is None, rep
    assert st["broker"]["reports"] >= 1, st["broker"]


def test_ping_without_workers_and_bad_arguments(yard):
    b = yard.broker()
    c = yard.client(b)
    p = ping_json(c, b"5000")
    assert p["probed"] == 0 and p["answered"] == 0 and p["complete"] is True, p
    assert p["workers"] == [], p
    for arg in (b"0", b"10001", b"x", b"5 6", b"-1", b"99999999999999999999"):
        r = ping(c, arg)
        assert r["status"] == "invalid", (arg, r)
        assert "ping takes a timeout in ms, 1..10000" in r["error"], r
    r = c.call(ADMIN, b"pingpong")
    assert r["status"] == "invalid" and "known: stats, ping, breaker" in r["error"], r
    assert b.proc.alive()


def test_reports_of_real_workers_in_stats(yard):
    b = yard.broker()
    w = yard.worker(b, "echo", "echo", capacity=3)
    c = yard.client(b)
    assert c.call("echo", b"hi")["status"] == "ok"
    ping_json(c)
    st = b.stats()
    e = worker_entry(st, pid=w.pid)
    rep = e["report"]
    assert rep["version"] == st["broker"]["version"], rep
    assert rep["uptime_ms"] >= 0 and rep["age_ms"] < 5000, rep
    loop = rep["loop"]
    for k in ("iterations", "busy_us", "max_us", "max_lag_us", "slow", "stalls",
              "last_stall_us", "slow_ms", "stall_ms"):
        assert isinstance(loop[k], int) and loop[k] >= 0, (k, loop)
    assert loop["iterations"] > 0 and loop["slow_ms"] == 50 and loop["stall_ms"] == 500
    assert loop["stalls"] == 0 and loop["stall_age_ms"] is None, loop
    mem = rep["memory"]
    real = rss_kib(w.pid) * 1024
    assert real / 3 <= mem["rss_bytes"] <= real * 3, (mem, real)
    assert mem["rss_peak_bytes"] >= mem["rss_bytes"] - 4096 * 16, mem
    assert mem["growth_window_ms"] >= 0 and mem["rss_growth_bytes"] >= 0, mem
    assert rep["in_flight"] == 0 and rep["pending"] == 0, rep
    assert rep["objects"] == {"events_waiting": 0}, rep
    # The broker's own figures.
    loop = st["loop"]
    assert loop["iterations"] > 0 and loop["stalls"] == 0, loop
    mem = st["memory"]
    real = rss_kib(b.proc.pid) * 1024
    assert real / 3 <= mem["rss_bytes"] <= real * 3, (mem, real)
    assert mem["rss_peak_bytes"] >= mem["rss_bytes"], mem
    for k in ("rss_growth_bytes", "growth_window_ms", "tasks", "clients", "timers"):
        assert isinstance(mem[k], int) and mem[k] >= 0, (k, mem)
    assert st["broker"]["bad_reports"] == 0, st["broker"]


def test_bad_reports_are_counted_and_ignored(yard):
    b = yard.broker()
    raw = yard.raw_worker(b, "bad")
    b.wait_workers("bad", 1)
    raw.send(HEARTBEAT, [{"uptime_ms": 7, "version": "good"}])
    b.wait_stats(lambda s: worker_entry(s, name="pytest-raw-worker")["report"] is not None,
                 5, "a first report")
    bad_bodies = [
        {"objects": {"n": -1}},
        {"objects": {"bad name": 1}},
        {"objects": {"o%d" % i: i for i in range(17)}},
        {"rss": "lots"},
        {"version": "v" * 200},
    ]
    for body in bad_bodies:
        raw.send(HEARTBEAT, [body])
    raw.send_frames([yardwire.header(yardwire.ROLE_WORKER, HEARTBEAT), b"\xc1"])
    # Nothing comes back (no ERROR per heartbeat), the worker stays, and
    # the last good report stands.
    got = raw.idle(0.5)
    assert not [m for m in got if m.cmd == ERROR], got
    st = b.stats()
    assert st["broker"]["bad_reports"] >= len(bad_bodies), st["broker"]
    e = worker_entry(st, name="pytest-raw-worker")
    assert e["report"]["version"] == "good" and e["report"]["uptime_ms"] >= 7, e
    assert st["services"]["bad"]["workers"] == 1
    # Still a working worker.
    c = yard.client(b)
    tid = c.submit1("bad", b"x")
    tasks = raw.next_tasks(5)
    assert tasks, "no task reached the worker"
    raw.result(tasks[0]["job"], payload=b"fine")
    assert c.wait_result(tid, 5)["status"] == "ok"


def test_a_stopped_worker_reports_a_loop_stall(yard):
    b = yard.broker()
    w = yard.worker(b, "echo", "echo", env_extra={"YARD_LOOP_STALL_MS": "200"})
    c = yard.client(b)
    ping_json(c)
    w.signal(signal.SIGSTOP)
    try:
        p = ping_json(c, b"300")
        assert p["complete"] is False and p["workers"][0]["answered"] is False, p
        time.sleep(1.2)
    finally:
        w.signal(signal.SIGCONT)
    # Its first report after it runs again shows the stall.
    st = b.wait_stats(
        lambda s: worker_entry(s, pid=w.pid)["report"]["loop"]["stalls"] >= 1,
        5, "the stall in the worker's report")
    loop = worker_entry(st, pid=w.pid)["report"]["loop"]
    assert loop["stall_ms"] == 200, loop
    assert loop["last_stall_us"] >= 200_000, loop
    assert loop["max_lag_us"] >= loop["last_stall_us"] or loop["max_us"] >= loop["last_stall_us"]
    assert loop["stall_age_ms"] is not None and loop["stall_age_ms"] < 10_000, loop
    # The late answer to the probe is recorded as its round trip (it may
    # come just after the first report, which a due heartbeat carried).
    b.wait_stats(lambda s: worker_entry(s, pid=w.pid)["ping"]["rtt_us"] >= 1_000_000,
                 5, "the late probe answer")
    assert ping_json(c)["complete"] is True
    assert c.call("echo", b"after")["status"] == "ok"


def test_a_stopped_broker_reports_a_loop_stall(yard):
    b = yard.broker(env_extra={"YARD_LOOP_STALL_MS": "200"})
    yard.worker(b, "echo", "echo")
    assert b.stats()["loop"]["stalls"] == 0
    b.proc.signal(signal.SIGSTOP)
    try:
        time.sleep(1.5)
    finally:
        b.proc.signal(signal.SIGCONT)
    st = b.stats()
    loop = st["loop"]
    assert loop["stalls"] >= 1 and loop["stall_ms"] == 200, loop
    assert loop["last_stall_us"] >= 400_000, loop
    assert loop["stall_age_ms"] is not None and loop["stall_age_ms"] < 5000, loop
    # The worker was not lost over it (1.5 s < 3 s liveness).
    assert st["services"]["echo"]["workers"] == 1


def test_yard_ping_cli(yard):
    b = yard.broker()
    w = yard.worker(b, "echo", "echo")
    p = yard.cli(b, ["ping"])
    assert p.returncode == 0, p
    out = p.stdout.decode()
    assert out.splitlines()[0].split() == ["SERVICE", "ID", "NAME", "PID", "RTT"], out
    row = [line for line in out.splitlines()[1:] if line.startswith("echo")]
    assert len(row) == 1 and str(w.pid) in row[0] and row[0].endswith("ms"), out
    p = yard.cli(b, ["ping", "--json", "--timeout", "500"])
    assert p.returncode == 0, p
    j = json.loads(p.stdout)
    assert j["complete"] is True and j["workers"][0]["pid"] == w.pid, j
    # A worker that does not answer: "no answer", exit 1.
    w.signal(signal.SIGSTOP)
    try:
        p = yard.cli(b, ["ping", "--timeout", "200"])
    finally:
        w.signal(signal.SIGCONT)
    assert p.returncode == 1, p
    assert "no answer" in p.stdout.decode(), p
    for bad in (["--timeout", "0"], ["--timeout", "10001"], ["--timeout", "x"],
                ["extra"], ["--nope"]):
        p = yard.cli(b, ["ping"] + bad)
        assert p.returncode == 2, (bad, p)
        assert p.stderr.decode().startswith("yard"), p
