"""Failure handling: dead workers, deadlines, full queues, cancel, retries."""

import signal
import time

import pytest

import yardwire as yw


def _workers_of(st, service):
    return [w for w in st.get("workers", []) if w.get("service") == service]


def test_kill9_worker_holding_tasks_tasks_redispatched(yard):
    b = yard.broker()
    w1 = yard.worker(b, "sleep", "sleep", capacity=4, threads=4)
    yard.worker(b, "sleep", "sleep", capacity=4, threads=4)
    c = yard.client(b)
    ids = [c.submit1("sleep", b"2000", id="k9-%d" % i, timeout_ms=30000)
           for i in range(8)]
    st = b.wait_stats(
        lambda st: [w["in_flight"] for w in _workers_of(st, "sleep")] == [4, 4],
        5, "both workers holding 4 tasks")
    t_kill = time.monotonic()
    w1.signal(signal.SIGKILL)
    assert w1.wait(5) is not None
    got = c.wait_results(ids, 20)
    elapsed = time.monotonic() - t_kill
    missing = sorted(set(ids) - set(got))
    assert not missing, "never answered after kill -9 of a worker: %r" % missing
    bad = {i: r for i, r in got.items() if r["status"] != "ok"}
    assert not bad, "tasks of the killed worker not re-dispatched: %r" % bad
    # survivor: 2 s for its own 4, the lost 4 come back after ~3 s, +2 s
    assert elapsed < 15, elapsed
    c.pump(0.5)
    assert all(len(c.results[i]) == 1 for i in ids), "a task was answered twice"
    st = b.stats()
    assert st["services"]["sleep"]["workers"] == 1, st["services"]["sleep"]
    assert st["services"]["sleep"]["in_flight"] == 0, st["services"]["sleep"]


def test_worker_lost_is_detected_in_about_3s(yard):
    b = yard.broker()
    w = yard.worker(b, "echo", "echo")
    w.signal(signal.SIGKILL)
    w.wait(5)
    t0 = time.monotonic()
    b.wait_stats(lambda st: st["services"]["echo"]["workers"] == 0, 8,
                 "the killed worker to be declared lost")
    assert time.monotonic() - t0 >= 1.5, "declared lost too early (liveness is 3 s)"


def test_worker_disconnect_requeues_task_to_another_worker(yard):
    b = yard.broker()
    w1 = yard.raw_worker(b, "rq", capacity=1)
    b.wait_workers("rq", 1)
    c = yard.client(b)
    c.submit1("rq", b"first", id="rq-1", timeout_ms=20000)
    c.submit1("rq", b"second", id="rq-2", timeout_ms=20000)
    tasks = w1.next_tasks(5)
    assert [t["id"] for t in tasks] == ["rq-1"], tasks
    w1.disconnect()
    w2 = yard.raw_worker(b, "rq", capacity=1)
    tasks = w2.next_tasks(5)
    # back to the *front* of the queue: rq-1 before rq-2
    assert [t["id"] for t in tasks] == ["rq-1"], tasks
    w2.result(tasks[0]["job"], "ok", b"done")
    r = c.wait_result("rq-1", 5)
    assert r is not None and r["status"] == "ok" and r["payload"] == b"done", r


def test_task_lost_three_times_is_answered_error(yard):
    b = yard.broker()
    c = yard.client(b)
    c.submit1("lossy", b"x", id="lost-3", timeout_ms=20000)
    deliveries = 0
    for _ in range(5):
        w = yard.raw_worker(b, "lossy", capacity=1)
        tasks = w.next_tasks(3)
        if not tasks:
            w.close()
            break
        deliveries += 1
        w.disconnect()  # left open: LINGER 0 would drop an unsent DISCONNECT
        if c.wait_result("lost-3", 0.3) is not None:
            break
    r = c.wait_result("lost-3", 5)
    assert r is not None, "task never answered after its workers kept vanishing"
    assert r["status"] == "error", r
    assert "lost" in (r.get("error") or ""), r
    assert deliveries == 3, "dispatched %d times before giving up" % deliveries


def test_timeout_answered_quickly_and_worker_free_again(yard):
    b = yard.broker()
    yard.worker(b, "sleep", "sleep", capacity=1, threads=1)
    c = yard.client(b)
    t0 = time.monotonic()
    r = c.call("sleep", b"5000", timeout=5, timeout_ms=500)
    elapsed = time.monotonic() - t0
    assert r is not None, "no answer within 5 s for a task with timeout_ms 500"
    assert r["status"] == "timeout", r
    assert "deadline" in (r.get("error") or ""), r
    assert 0.4 <= elapsed < 1.5, "timeout answered after %.2fs" % elapsed
    # the worker is free again: a short task on the same (only) worker is ok
    t1 = time.monotonic()
    r2 = c.call("sleep", b"50", timeout=12, timeout_ms=10000)
    assert r2 is not None and r2["status"] == "ok", r2
    freed_after = time.monotonic() - t1
    st = b.stats()
    assert st["services"]["sleep"]["timed_out"] >= 1
    assert st["services"]["sleep"]["in_flight"] == 0
    # CANCEL {job} went to the worker; a cancel-aware sleep frees its slot
    # at once rather than after the full 5 s.
    assert freed_after < 2.5, (
        "the worker stayed busy %.2fs after the timed-out task's CANCEL" % freed_after)
    c.pump(0.3)
    assert len(c.results) == 2 and all(len(v) == 1 for v in c.results.values()), c.results


def test_task_for_service_without_workers_times_out(yard):
    b = yard.broker()
    c = yard.client(b)
    t0 = time.monotonic()
    r = c.call("nobody", b"x", timeout=5, timeout_ms=300)
    assert r is not None and r["status"] == "timeout", r
    assert time.monotonic() - t0 < 1.5


def test_queue_full_rejects_exactly_the_excess(yard):
    b = yard.broker("--max-queue", "5")
    c = yard.client(b)
    ids = ["qf-%02d" % i for i in range(20)]
    c.submit([yw.Client.task(i, "echo", i.encode(), timeout_ms=30000) for i in ids])
    t0 = time.monotonic()
    got = c.wait_results(ids[5:], 2)
    assert time.monotonic() - t0 < 1.0, "rejections must be immediate"
    assert set(got) == set(ids[5:]), "not rejected: %r" % sorted(set(ids[5:]) - set(got))
    for i in ids[5:]:
        assert got[i]["status"] == "rejected", got[i]
        assert "queue full" in (got[i].get("error") or ""), got[i]
        ra = got[i].get("retry_after_ms")
        assert ra is None or (isinstance(ra, int) and ra >= 0), got[i]
    c.pump(0.5)
    early = [i for i in ids[:5] if i in c.results]
    assert not early, "queued tasks answered before any worker: %r" % [c.results[i] for i in early]
    st = b.stats()
    assert st["services"]["echo"]["queued"] == 5 and st["services"]["echo"]["rejected"] == 15, st["services"]["echo"]
    yard.worker(b, "echo", "echo", wait=False)
    got = c.wait_results(ids[:5], 10)
    assert len(got) == 5, "queued tasks not served after a worker joined"
    for i in ids[:5]:
        assert got[i]["status"] == "ok" and got[i]["payload"] == i.encode(), got[i]
    assert all(len(c.results[i]) == 1 for i in ids)


def test_queue_full_with_busy_worker(yard):
    b = yard.broker("--max-queue", "3")
    yard.worker(b, "sleep", "sleep", capacity=1, threads=1)
    c = yard.client(b)
    busy = c.submit1("sleep", b"1000", id="busy", timeout_ms=10000)
    b.wait_stats(lambda st: st["services"]["sleep"]["in_flight"] == 1, 5, "task in flight")
    ids = [c.submit1("sleep", b"10", id="bq-%d" % i, timeout_ms=10000) for i in range(6)]
    got = c.wait_results(ids[3:], 2)
    assert [got.get(i, {}).get("status") for i in ids[3:]] == ["rejected"] * 3, got
    got = c.wait_results([busy] + ids[:3], 10)
    assert [got.get(i, {}).get("status") for i in [busy] + ids[:3]] == ["ok"] * 4, got


def test_cancel_queued_task(yard):
    b = yard.broker()
    c = yard.client(b)
    c.submit1("nobody", b"x", id="cq-1", timeout_ms=30000)
    c.submit1("nobody", b"y", id="cq-2", timeout_ms=30000)
    b.wait_stats(lambda st: st["services"]["nobody"]["queued"] == 2, 5, "2 tasks queued")
    c.cancel(["cq-1"])
    r = c.wait_result("cq-1", 3)
    assert r is not None and r["status"] == "cancelled", r
    st = b.stats()
    assert st["services"]["nobody"]["queued"] == 1, st["services"]["nobody"]
    assert st["services"]["nobody"]["cancelled"] == 1, st["services"]["nobody"]
    assert "cq-2" not in c.results
    # a worker joining now only gets the survivor
    w = yard.raw_worker(b, "nobody", capacity=4)
    w.next_tasks(5)
    w.idle(0.3)
    assert [t["id"] for t in w.tasks] == ["cq-2"], w.tasks


def test_cancel_in_flight_task_sleep_worker(yard):
    b = yard.broker()
    yard.worker(b, "sleep", "sleep", capacity=1, threads=1)
    c = yard.client(b)
    c.submit1("sleep", b"3000", id="cf-1", timeout_ms=30000)
    b.wait_stats(lambda st: st["services"]["sleep"]["in_flight"] == 1, 5, "task in flight")
    t0 = time.monotonic()
    c.cancel(["cf-1"])
    r = c.wait_result("cf-1", 3)
    assert r is not None and r["status"] == "cancelled", r
    assert time.monotonic() - t0 < 1.0
    # the worker's late result is dropped, and the slot comes back
    b.wait_stats(lambda st: st["services"]["sleep"]["in_flight"] == 0, 6, "slot freed")
    c.pump(0.3)
    assert len(c.results["cf-1"]) == 1, c.results["cf-1"]
    r = c.call("sleep", b"10", timeout=5)
    assert r is not None and r["status"] == "ok", r


def test_cancel_in_flight_sends_cancel_job_to_worker(yard):
    b = yard.broker()
    w = yard.raw_worker(b, "rawc", capacity=1)
    b.wait_workers("rawc", 1)
    c = yard.client(b)
    c.submit1("rawc", b"x", id="cj-1", timeout_ms=30000)
    tasks = w.next_tasks(5)
    assert len(tasks) == 1
    job = tasks[0]["job"]
    c.cancel(["cj-1"])
    r = c.wait_result("cj-1", 3)
    assert r is not None and r["status"] == "cancelled", r
    m, _ = w.recv_until(3, lambda m: m.cmd == yw.CANCEL)
    assert m is not None, "worker never got CANCEL {job}"
    assert m.bodies == [{"job": job}] or [x.get("job") for x in m.bodies] == [job], m
    # the worker answers anyway (that frees the slot); the client hears nothing more
    w.result(job, "ok", b"late")
    c.pump(0.5)
    assert len(c.results["cj-1"]) == 1, c.results["cj-1"]
    c.submit1("rawc", b"y", id="cj-2", timeout_ms=30000)
    tasks = w.next_tasks(3)
    assert [t["id"] for t in tasks] == ["cj-2"], "slot not freed by the late result"


def test_cancel_unknown_id_is_ignored(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    c.cancel(["never-submitted"])
    c.pump(0.5)
    assert not c.results and not c.errors, (c.results, c.errors)
    r = c.call("echo", b"still fine")
    assert r is not None and r["status"] == "ok"


def test_retries_on_fail_handler_attempts_3(yard):
    b = yard.broker()
    yard.worker(b, "fail", "fail")
    c = yard.client(b)
    r = c.call("fail", b"x", timeout=10, retries=2, backoff_ms=10)
    assert r is not None, "no answer"
    assert r["status"] == "error", r
    assert r["attempts"] == 3, r
    assert r.get("error"), "error text from the worker expected: %r" % (r,)
    r0 = c.call("fail", b"x", timeout=10)
    assert r0 is not None and r0["status"] == "error" and r0["attempts"] == 1, r0
    st = b.stats()
    assert st["services"]["fail"]["retried"] == 2, st["services"]["fail"]
    assert st["services"]["fail"]["failed"] == 2, st["services"]["fail"]


def test_retry_backoff_is_applied(yard):
    b = yard.broker()
    yard.worker(b, "fail", "fail")
    c = yard.client(b)
    t0 = time.monotonic()
    r = c.call("fail", b"x", timeout=10, retries=2, backoff_ms=400)
    elapsed = time.monotonic() - t0
    assert r is not None and r["status"] == "error" and r["attempts"] == 3, r
    # 400 + 800 ms, +-20% jitter
    assert elapsed >= 0.9, "retries not delayed by backoff: %.2fs" % elapsed


def test_flaky_handler_succeeds_with_retries(yard):
    # Half the attempts fail: with its breaker on, the service would (rightly)
    # be shed after a few failures; this test is about retries alone.
    b = yard.broker("--breaker", "enabled=false")
    yard.worker(b, "flaky", "flaky", capacity=8, threads=2, extra=["--fail-rate", "0.5"])
    c = yard.client(b)
    ids = [c.submit1("flaky", b"f%d" % i, retries=16, backoff_ms=1, timeout_ms=20000)
           for i in range(40)]
    got = c.wait_results(ids, 20)
    assert len(got) == 40
    bad = [r for r in got.values() if r["status"] != "ok"]
    assert not bad, bad[:3]
    attempts = [r["attempts"] for r in got.values()]
    assert min(attempts) >= 1 and max(attempts) > 1, attempts
    st = b.stats()
    assert st["services"]["flaky"]["retried"] == sum(a - 1 for a in attempts), (
        st["services"]["flaky"], sum(a - 1 for a in attempts))


def test_retries_stop_at_deadline(yard):
    b = yard.broker()
    yard.worker(b, "fail", "fail")
    c = yard.client(b)
    t0 = time.monotonic()
    r = c.call("fail", b"x", timeout=10, retries=16, backoff_ms=1000, timeout_ms=1500)
    assert r is not None, "no answer"
    assert r["status"] in ("error", "timeout"), r
    assert r["attempts"] < 17, r
    assert time.monotonic() - t0 < 3.0


@pytest.mark.parametrize("handler", ["echo", "sleep", "fail", "flaky"])
def test_worker_service_defaults_to_handler_name(yard, handler):
    b = yard.broker()
    argv = ["--handler", handler, "--broker", b.endpoint]
    yard.spawn("worker-default-" + handler, [yard.bin("yard-worker")] + argv,
               yard.base_env(b))
    b.wait_workers(handler, 1)


def test_ready_for_another_service_or_admin_is_refused(yard):
    """PROTOCOL.md 5.5 and section 9 row 14: a connection serves one service
    for its life, and yard.admin is the broker's own; such a READY gets ERROR
    bad_field and the registration stays as it was."""
    b = yard.broker()
    w = yard.raw_worker(b, "svc-a", capacity=2)
    m = w.recv(5)
    assert m is not None and m.cmd == yw.HEARTBEAT, m  # READY acknowledged
    w.service = "svc-b"
    w.ready()
    m, _ = w.recv_until(5, lambda m: m.cmd == yw.ERROR)
    assert m is not None and m.bodies[0]["code"] == "bad_field", m
    assert "another service" in m.bodies[0]["message"]
    st = b.stats()
    assert st["services"]["svc-a"]["workers"] == 1, st["services"]
    assert st["services"].get("svc-b", {}).get("workers", 0) == 0
    admin = yard.raw_worker(b, "yard.admin")
    m, _ = admin.recv_until(5, lambda m: m.cmd == yw.ERROR)
    assert m is not None and m.bodies[0]["code"] == "bad_field", m
    st = b.stats()
    assert "yard.admin" not in st["services"], st["services"]
    # The first registration still works.
    c = yard.client(b)
    tid = c.submit1("svc-a", b"x")
    tasks = w.next_tasks(5)
    assert tasks and tasks[0]["id"] == tid, tasks
