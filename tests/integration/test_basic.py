"""Basic routing: round trips, the wire contract seen from both ends, the
admin stats, 10,000 tasks over 4 workers, priority order, de-duplication."""

import json
import os
import random
import time

import yardwire as yw
from conftest import rss_kib


def test_echo_round_trip_result_fields(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    r = c.call("echo", b"hello \x00\xff world", timeout=10)
    assert r is not None, "no RESULT for an echo task"
    assert r["status"] == "ok", r
    assert isinstance(r["payload"], bytes), "payload must be msgpack bin: %r" % (r,)
    assert r["payload"] == b"hello \x00\xff world"
    assert r.get("attempts") == 1, r
    assert not r.get("cached", False), r
    # encoders omit zero-valued optional fields (yard_proto.h), so absent = 0
    for k in ("queue_us", "run_us", "total_us"):
        assert isinstance(r.get(k, 0), int) and r.get(k, 0) >= 0, (k, r)
    assert r.get("total_us", 0) > 0, "total_us missing: %r" % (r,)
    assert r["total_us"] >= r.get("run_us", 0), r


def test_result_header_is_broker_result(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    c.submit1("echo", b"x", id="hdr-1")
    m, _ = c.recv_until(10, lambda m: m.cmd == yw.RESULT)
    assert m is not None
    assert m.raw_header == yw.header("B", yw.RESULT), m.raw_header
    assert m.bodies[0]["id"] == "hdr-1"


def test_empty_and_max_payload(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    r = c.call("echo", b"", timeout=10)
    assert r is not None and r["status"] == "ok" and yw.as_bytes(r.get("payload")) == b"", r
    big = bytes(random.getrandbits(8) for _ in range(1024)) * (yw.MAX_PAYLOAD // 1024)
    assert len(big) == yw.MAX_PAYLOAD
    r = c.call("echo", big, timeout=20)
    assert r is not None, "no answer for a payload of exactly YARD_MAX_PAYLOAD"
    assert r["status"] == "ok", {k: v for k, v in r.items() if k != "payload"}
    assert r["payload"] == big


def test_client_heartbeat_is_answered(yard):
    b = yard.broker()
    c = yard.client(b)
    # A HEARTBEAT from a client the broker has never seen means the broker
    # restarted under it: the answer is DISCONNECT, so it re-sends at once.
    c.heartbeat()
    m = c.recv(5)
    assert m is not None, "broker did not answer a client HEARTBEAT"
    assert m.raw_header == yw.header("B", yw.DISCONNECT) and m.bodies == [], m
    # Once known (it has talked to this broker), a HEARTBEAT gets HEARTBEAT.
    r = c.call("yard.admin", b"stats", timeout=10)
    assert r is not None and r["status"] == "ok", r
    c.heartbeat()
    m = c.recv(5)
    assert m is not None, "broker did not answer a client HEARTBEAT"
    assert m.raw_header == yw.header("B", yw.HEARTBEAT) and m.bodies == [], m


def test_admin_stats_shape_and_counts(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo", capacity=3)
    c = yard.client(b)
    ids = [c.submit1("echo", b"s%d" % i) for i in range(7)]
    got = c.wait_results(ids, 10)
    assert len(got) == 7 and all(r["status"] == "ok" for r in got.values())
    st = b.stats()
    assert st["broker"]["version"] == "0.1.0"
    assert isinstance(st["broker"]["pid"], int) and st["broker"]["pid"] == b.proc.pid
    assert st["broker"]["draining"] is False
    assert isinstance(st["broker"]["uptime_ms"], int)
    fields = ("submitted", "completed", "failed", "timed_out", "rejected",
              "retried", "cancelled", "queued", "in_flight", "workers",
              "latency_us")
    for f in fields:
        assert f in st["total"], ("total", f, st["total"])
        assert f in st["services"]["echo"], ("services.echo", f)
    for f in ("avg", "p50", "p95", "p99", "max"):
        assert f in st["total"]["latency_us"], f
    echo = st["services"]["echo"]
    assert echo["completed"] == 7, echo
    assert echo["submitted"] == 7, echo
    assert echo["workers"] == 1 and echo["capacity"] == 3, echo
    assert echo["queued"] == 0 and echo["in_flight"] == 0, echo
    assert st["total"]["completed"] >= 7
    assert st["total"]["workers"] == 1
    ws = [w for w in st["workers"] if w["service"] == "echo"]
    assert len(ws) == 1 and ws[0]["capacity"] == 3 and ws[0]["in_flight"] == 0, ws
    for k in ("id", "name", "last_seen_ms"):
        assert k in ws[0], (k, ws[0])


def test_raw_worker_gets_task_fields_and_capacity_is_respected(yard):
    b = yard.broker()
    w = yard.raw_worker(b, "raw", capacity=2)
    b.wait_workers("raw", 1)
    c = yard.client(b)
    ids = [c.submit1("raw", b"p%d" % i, id="cap-%d" % i, timeout_ms=20000)
           for i in range(5)]
    # The broker may send the 2 tasks in one TASK message or in two.
    w.idle(1.0)
    assert len(w.tasks) == 2, "capacity 2 but worker got %d tasks: %r" % (len(w.tasks), w.tasks)
    t = w.tasks[0]
    assert isinstance(t["job"], int), t
    assert t["id"] == "cap-0" and t["service"] == "raw" and t["payload"] == b"p0", t
    assert t["attempt"] == 1, t
    assert 0 < t["timeout_ms"] <= 20000, t
    assert {x["id"] for x in w.tasks} == {"cap-0", "cap-1"}, "FIFO dispatch"
    # Answer them one at a time: exactly one new task per freed slot.
    answered = 0
    while answered < 5:
        t = w.tasks[answered]
        w.result(t["job"], "ok", b"R:" + t["payload"])
        answered += 1
        w.idle(0.3)
        assert len(w.tasks) == min(5, answered + 2), (answered, [x["id"] for x in w.tasks])
    got = c.wait_results(ids, 5)
    assert len(got) == 5
    for i, id in enumerate(ids):
        assert got[id]["status"] == "ok" and got[id]["payload"] == b"R:p%d" % i, got[id]
    assert len({t["job"] for t in w.tasks}) == 5, "job handles must be unique"


def test_10000_tasks_over_4_workers_exactly_once(yard):
    b = yard.broker()
    for n in range(1, 5):
        yard.worker(b, "echo", "echo", capacity=32, expect_total=n)
    clients = [yard.client(b) for _ in range(2)]
    total = 10000
    per = total // len(clients)
    window = 2048
    plan = []
    for ci, c in enumerate(clients):
        bodies = [yw.Client.task("k%d-%05d" % (ci, i), "echo", b"payload-%d-%d" % (ci, i))
                  for i in range(per)]
        plan.append(bodies)
    sent = [0] * len(clients)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = True
        for ci, c in enumerate(clients):
            outstanding = sent[ci] - len(c.order)
            if sent[ci] < per and outstanding < window:
                n = min(yw.MAX_BATCH, window - outstanding, per - sent[ci])
                c.submit(plan[ci][sent[ci]:sent[ci] + n])
                sent[ci] += n
            c.pump(0.005)
            if len(c.order) < per:
                done = False
        if done:
            break
    # Late duplicates would show up here.
    for c in clients:
        c.pump(0.3)
    for ci, c in enumerate(clients):
        expected = {body["id"]: body["payload"] for body in plan[ci]}
        missing = set(expected) - set(c.results)
        assert not missing, "client %d: %d tasks never answered, e.g. %r" % (
            ci, len(missing), sorted(missing)[:5])
        dups = {i: len(v) for i, v in c.results.items() if len(v) > 1}
        assert not dups, "client %d: answered more than once: %r" % (ci, list(dups.items())[:5])
        unknown = set(c.results) - set(expected)
        assert not unknown, "client %d: results for ids never sent: %r" % (ci, sorted(unknown)[:5])
        bad = [(i, r) for i, r in ((i, v[0]) for i, v in c.results.items())
               if r["status"] != "ok" or r["payload"] != expected[i]]
        assert not bad, "client %d: %d wrong results, e.g. %r" % (ci, len(bad), bad[:3])
        assert not c.errors, c.errors[:3]
    st = b.stats()
    assert st["services"]["echo"]["completed"] == total, st["services"]["echo"]
    assert st["services"]["echo"]["workers"] == 4


def test_priority_order_then_fifo(yard):
    b = yard.broker()
    c = yard.client(b)
    rnd = random.Random(7)
    prios = [p for p in range(10) for _ in range(3)]
    rnd.shuffle(prios)
    ids = []
    for seq, p in enumerate(prios):
        # one SUBMIT per task so arrival order at the broker is seq order
        ids.append(c.submit1("echo", b"%d" % seq, id="prio-%02d-p%d" % (seq, p),
                             priority=p, timeout_ms=30000))
    b.wait_stats(lambda st: st.get("services", {}).get("echo", {}).get("queued") == len(ids),
                 10, "all %d tasks queued" % len(ids))
    yard.worker(b, "echo", "echo", capacity=1, threads=1, wait=False)
    got = c.wait_results(ids, 20)
    assert len(got) == len(ids), "missing: %r" % sorted(set(ids) - set(got))
    assert all(r["status"] == "ok" for r in got.values())
    expected = [i for _, _, i in sorted((-p, seq, ids[seq]) for seq, p in enumerate(prios))]
    assert c.order == expected, "completion order:\n%r\nexpected:\n%r" % (c.order, expected)


def test_duplicate_id_in_flight_answered_once(yard):
    b = yard.broker()
    yard.worker(b, "sleep", "sleep", capacity=2, threads=2)
    c = yard.client(b)
    c.submit([yw.Client.task("dup-1", "sleep", b"800", timeout_ms=10000)])
    c.submit([yw.Client.task("dup-1", "sleep", b"800", timeout_ms=10000)])
    # and twice inside one batch
    c.submit([yw.Client.task("dup-2", "sleep", b"800", timeout_ms=10000),
              yw.Client.task("dup-2", "sleep", b"800", timeout_ms=10000)])
    got = c.wait_results(["dup-1", "dup-2"], 10)
    assert set(got) == {"dup-1", "dup-2"}, got
    assert got["dup-1"]["status"] == "ok" and got["dup-2"]["status"] == "ok", got
    end = time.monotonic() + 2.0  # a second run would finish within this
    while time.monotonic() < end:
        c.pump(end - time.monotonic())
    assert len(c.results["dup-1"]) == 1, c.results["dup-1"]
    assert len(c.results["dup-2"]) == 1, c.results["dup-2"]
    st = b.stats()
    assert st["services"]["sleep"]["completed"] == 2, st["services"]["sleep"]


def test_same_id_after_completion_is_a_new_task(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    r1 = c.call("echo", b"first", id="again")
    assert r1 is not None and r1["payload"] == b"first"
    c.submit([yw.Client.task("again", "echo", b"second")])
    deadline = time.monotonic() + 5
    while len(c.results["again"]) < 2 and time.monotonic() < deadline:
        c.pump(0.2)
    assert len(c.results["again"]) == 2, "a finished id re-submitted was not run again"
    assert c.results["again"][1]["payload"] == b"second"


def test_same_id_from_two_clients_both_answered(yard):
    b = yard.broker()
    yard.worker(b, "sleep", "sleep", capacity=2, threads=2)
    c1, c2 = yard.client(b), yard.client(b)
    c1.submit([yw.Client.task("shared-id", "sleep", b"300")])
    c2.submit([yw.Client.task("shared-id", "sleep", b"300")])
    r1 = c1.wait_result("shared-id", 10)
    r2 = c2.wait_result("shared-id", 10)
    assert r1 is not None and r1["status"] == "ok", r1
    assert r2 is not None and r2["status"] == "ok", "de-dup must be per client identity: %r" % (r2,)


def test_admin_stats_json_is_valid_utf8_json(yard):
    b = yard.broker()
    c = yard.client(b)
    r = c.call(yw.ADMIN_SERVICE, b"stats")
    assert r is not None and r["status"] == "ok"
    json.loads(yw.as_bytes(r["payload"]).decode("utf-8"))


def _run_round(c, n, payload, window=512):
    ids = ["m%d-%s" % (i, os.urandom(4).hex()) for i in range(n)]
    bodies = [yw.Client.task(i, "echo", payload) for i in ids]
    sent = 0
    start = len(c.order)
    deadline = time.monotonic() + 30
    while len(c.order) - start < n and time.monotonic() < deadline:
        outstanding = sent - (len(c.order) - start)
        if sent < n and outstanding < window:
            k = min(128, n - sent, window - outstanding)
            c.submit(bodies[sent:sent + k])
            sent += k
        c.pump(0.005)
    got = c.wait_results(ids, 5)
    assert len(got) == n and all(r["status"] == "ok" for r in got.values())
    for i in ids:  # keep the client's own memory flat
        del c.results[i]
    del c.order[:]


def test_memory_does_not_grow_with_completed_tasks(yard):
    """Every finished task must be freed: 6,000 tasks of 16 KiB through a
    warmed-up broker and worker may not leave ~96 MiB behind. (ASan's
    quarantine is turned off so freed memory is reused there too.)"""
    asan = os.environ.get("ASAN_OPTIONS", "")
    yard.extra_env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=0"
    b = yard.broker()
    w = yard.worker(b, "echo", "echo", capacity=16)
    c = yard.client(b)
    payload = os.urandom(16 * 1024)
    _run_round(c, 2000, payload)  # warm-up: pools, hash tables, buffers
    before = {"broker": rss_kib(b.proc.pid), "worker": rss_kib(w.pid)}
    for _ in range(3):
        _run_round(c, 2000, payload)
    after = {"broker": rss_kib(b.proc.pid), "worker": rss_kib(w.pid)}
    growth = {k: (after[k] - before[k]) // 1024 for k in before}
    assert growth["broker"] < 24, "yard-broker RSS grew %d MiB over 6000 tasks (%r -> %r KiB)" % (
        growth["broker"], before, after)
    assert growth["worker"] < 24, "yard-worker RSS grew %d MiB over 6000 tasks (%r -> %r KiB)" % (
        growth["worker"], before, after)
