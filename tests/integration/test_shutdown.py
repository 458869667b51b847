"""SIGTERM / SIGINT: drain in-flight and queued work within --grace, refuse
new work with status "shutdown", answer leftovers "shutdown", exit 0."""

import signal
import time

import yardwire as yw

# After the signal is sent we give the broker this long to notice it before
# submitting work that must be refused: the signal and our TCP message race
# otherwise (this is ordering slack, not a readiness wait).
SIGNAL_SLACK = 0.3


def test_sigterm_drains_in_flight_and_queued_then_exits_0(yard):
    b = yard.broker("--grace", "8000")
    yard.worker(b, "sleep", "sleep", capacity=4, threads=4)
    c = yard.client(b)
    ids = [c.submit1("sleep", b"1000", id="dr-%d" % i, timeout_ms=20000) for i in range(6)]
    b.wait_stats(lambda st: st["services"]["sleep"]["in_flight"] == 4
                 and st["services"]["sleep"]["queued"] == 2, 5, "4 in flight, 2 queued")
    t0 = time.monotonic()
    b.proc.signal(signal.SIGTERM)
    time.sleep(SIGNAL_SLACK)
    late = c.submit1("sleep", b"10", id="late-1", timeout_ms=20000)
    r = c.wait_result(late, 2)
    assert r is not None, "no answer to a SUBMIT sent after SIGTERM"
    assert r["status"] == "shutdown", r
    assert "shutting down" in (r.get("error") or ""), r
    got = c.wait_results(ids, 8)
    statuses = {i: got.get(i, {}).get("status") for i in ids}
    assert statuses == {i: "ok" for i in ids}, statuses
    rc = b.proc.wait(5)
    assert rc == 0, "broker exit code %r after SIGTERM drain" % rc
    assert time.monotonic() - t0 < 8.0


def test_sigterm_grace_expires_leftovers_get_shutdown(yard):
    b = yard.broker("--grace", "500")
    yard.worker(b, "sleep", "sleep", capacity=2, threads=2)
    c = yard.client(b)
    ids = [c.submit1("sleep", b"5000", id="gx-%d" % i, timeout_ms=30000) for i in range(3)]
    b.wait_stats(lambda st: st["services"]["sleep"]["in_flight"] == 2
                 and st["services"]["sleep"]["queued"] == 1, 5, "2 in flight, 1 queued")
    t0 = time.monotonic()
    b.proc.signal(signal.SIGTERM)
    got = c.wait_results(ids, 4)
    took = time.monotonic() - t0
    statuses = {i: got.get(i, {}).get("status") for i in ids}
    assert statuses == {i: "shutdown" for i in ids}, statuses
    assert 0.4 <= took < 2.5, "leftovers answered %.2fs after SIGTERM with --grace 500" % took
    rc = b.proc.wait(3)
    assert rc == 0, "broker exit code %r" % rc
    c.pump(0.3)
    assert all(len(c.results[i]) == 1 for i in ids)


def test_sigterm_sends_disconnect_to_workers(yard):
    b = yard.broker("--grace", "200")
    w = yard.raw_worker(b, "rw", capacity=1)
    b.wait_workers("rw", 1)
    b.proc.signal(signal.SIGTERM)
    m, _ = w.recv_until(5, lambda m: m.cmd == yw.DISCONNECT)
    assert m is not None, "worker got no DISCONNECT when the broker shut down"
    assert m.raw_header == yw.header("B", yw.DISCONNECT)
    assert b.proc.wait(3) == 0


def test_idle_broker_sigterm_exits_0_promptly(yard):
    b = yard.broker()  # default grace 10 s: nothing to drain, so no wait
    t0 = time.monotonic()
    b.proc.signal(signal.SIGTERM)
    rc = b.proc.wait(5)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 2.0


def test_sigint_behaves_like_sigterm(yard):
    b = yard.broker("--grace", "3000")
    yard.worker(b, "sleep", "sleep", capacity=1, threads=1)
    c = yard.client(b)
    id = c.submit1("sleep", b"800", timeout_ms=10000)
    b.wait_stats(lambda st: st["services"]["sleep"]["in_flight"] == 1, 5, "in flight")
    b.proc.signal(signal.SIGINT)
    time.sleep(SIGNAL_SLACK)
    late = c.submit1("sleep", b"1", timeout_ms=10000)
    r = c.wait_result(late, 2)
    assert r is not None and r["status"] == "shutdown", r
    r = c.wait_result(id, 5)
    assert r is not None and r["status"] == "ok", r
    assert b.proc.wait(4) == 0
