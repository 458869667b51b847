"""Circuit breakers per service (PROTOCOL.md 8.6 and 10), end to end: real
yard-broker, yard-worker and yard processes.

The breaker is driven through its opening rules (consecutive failures,
sliding window, timeouts, slow calls), its recovery (open -> half_open ->
closed, or back to open with a longer timeout), shedding of what waits
behind it, fallback services, the admin commands (raw and through
`yard breaker`) and the broker's settings (flags, YARD_BREAKER, config
file). Open timeouts are small (a few hundred ms) where a test waits for
them, and long (60 s) where a test needs the breaker to stay open; every
wait polls the broker's state with a bound, never a bare sleep.
"""

import json
import signal
import time

import pytest

import yardwire as yw

LONG = ("base_timeout_ms=60000", "max_timeout_ms=60000")  # stays open


# ---- helpers ---------------------------------------------------------------

def start_broker(yard, *specs, extra=()):
    """A broker with --breaker SPEC for each spec."""
    args = []
    for s in specs:
        args += ["--breaker", s]
    return yard.broker(*(args + list(extra)))


def admin(b, text, timeout=5.0):
    """Raw yard.admin call; returns the result body."""
    r = b.admin().call(yw.ADMIN_SERVICE, text.encode(), timeout=timeout)
    assert r is not None, "no answer to yard.admin %r within %.1fs" % (text, timeout)
    return r


def admin_json(b, text):
    r = admin(b, text)
    assert r["status"] == "ok", (text, r)
    return json.loads(yw.as_bytes(r["payload"]).decode())


def show(b, service):
    return admin_json(b, "breaker show " + service)


def wait_state(b, service, state, timeout=5.0):
    """Polls `breaker show` until the breaker is in state; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        br = show(b, service)
        if br["state"] == state:
            return br
        if time.monotonic() >= deadline:
            pytest.fail("breaker of %r not %s within %.1fs: %r"
                        % (service, state, timeout, br))
        time.sleep(0.02)


def call(c, service, payload=b"x", timeout=10.0, **fields):
    r = c.call(service, payload, timeout=timeout, **fields)
    assert r is not None, "no answer from %r within %.1fs" % (service, timeout)
    return r


def fail_n(c, service, n):
    """n tasks in a row, each answered error by the worker."""
    for i in range(n):
        r = call(c, service, b"f%d" % i)
        assert r["status"] == "error", (i, r)


def assert_circuit_open(r, service, max_retry_ms):
    assert r["status"] == "circuit_open", r
    assert (r.get("error") or "").startswith("circuit open for %s" % service), r
    ra = r.get("retry_after_ms")
    assert isinstance(ra, int) and 0 < ra <= max_retry_ms, r


# ---- a) consecutive failures open it; an open breaker answers at once ------

def test_opens_after_fail_threshold_and_rejects_at_once(yard):
    b = start_broker(yard, "fail_threshold=3", *LONG)
    yard.worker(b, "fl", "fail")
    c = yard.client(b)
    fail_n(c, "fl", 2)
    br = show(b, "fl")
    assert br["state"] == "closed" and br["consecutive_failures"] == 2, br
    fail_n(c, "fl", 1)
    br = show(b, "fl")
    assert br["state"] == "open", br
    assert br["trips"] == 1 and br["consecutive_trips"] == 1, br
    assert br["total"] == 3 and br["failed"] == 3 and br["successful"] == 0, br
    assert 0 < br["retry_in_ms"] <= 72000, br  # 60 s +- 20 %, capped at 60 s
    assert br["success_rate"] == 0.0, br

    # One at a time: each answered circuit_open well under a second.
    for i in range(10):
        t0 = time.monotonic()
        r = call(c, "fl", b"one", timeout=5, timeout_ms=30000)
        assert time.monotonic() - t0 < 1.0, "circuit_open took %.2fs" % (
            time.monotonic() - t0)
        assert_circuit_open(r, "fl", 60000)
    # 50 in separate messages: all answered at once, none reaches the worker.
    t0 = time.monotonic()
    ids = [c.submit1("fl", b"burst", timeout_ms=30000) for _ in range(40)]
    got = c.wait_results(ids, 5)
    elapsed = time.monotonic() - t0
    assert len(got) == 40, "unanswered: %d" % (40 - len(got))
    assert elapsed < 1.0, "40 circuit_open answers took %.2fs" % elapsed
    for r in got.values():
        assert_circuit_open(r, "fl", 60000)

    st = b.stats()["services"]["fl"]
    assert st["circuit_open"] == 50, st
    assert st["failed"] == 3 and st["submitted"] == 53, st
    assert st["queued"] == 0 and st["in_flight"] == 0, st
    assert st["breaker"]["state"] == "open", st["breaker"]
    assert st["breaker"]["rejected"] == 50, st["breaker"]
    assert st["breaker"]["trips"] == 1, st["breaker"]
    assert b.stats()["total"]["circuit_open"] == 50


# ---- b) recovery: open -> half_open -> closed ------------------------------

def test_recovers_through_half_open_after_worker_replaced(yard):
    b = start_broker(yard, "fail_threshold=2", "base_timeout_ms=600",
                     "max_timeout_ms=600", "half_open_test_count=2")
    w = yard.worker(b, "rec", "fail")
    c = yard.client(b)
    fail_n(c, "rec", 2)
    br = show(b, "rec")
    assert br["state"] == "open" and br["trips"] == 1, br
    assert 0 < br["retry_in_ms"] <= 600, br
    # The failing worker goes (SIGTERM, by PID); a healthy one takes over.
    w.signal(signal.SIGTERM)
    assert w.wait(5) is not None, "fail worker did not stop on SIGTERM"
    b.wait_workers("rec", 0)
    yard.worker(b, "rec", "echo")
    # The timer turns it half-open without any traffic.
    br = wait_state(b, "rec", "half_open", timeout=5)
    assert br["half_open_trials"] == 0 and br["retry_in_ms"] == 0, br
    # Three in one message: two trials admitted, the third refused with
    # retry_after_ms = base_timeout_ms.
    ids = ["trial-1", "trial-2", "trial-3"]
    c.submit([yw.Client.task(i, "rec", i.encode(), timeout_ms=10000)
              for i in ids])
    got = c.wait_results(ids, 5)
    assert [got.get(i, {}).get("status") for i in ids] == \
        ["ok", "ok", "circuit_open"], got
    assert got["trial-1"]["payload"] == b"trial-1", got["trial-1"]
    assert got["trial-3"].get("retry_after_ms") == 600, got["trial-3"]
    br = wait_state(b, "rec", "closed", timeout=3)
    assert br["recovery_trials"] == 2, br
    assert br["recovery_success_rate"] == 1.0, br
    assert br["trips"] == 1 and br["consecutive_trips"] == 0, br
    assert br["consecutive_failures"] == 0, br
    assert br["time_in_state_ms"]["open"] > 0, br
    assert br["time_in_state_ms"]["half_open"] >= 0, br
    r = call(c, "rec", b"after")
    assert r["status"] == "ok" and r["payload"] == b"after", r


# ---- c) a failed trial re-opens with the next (longer) timeout -------------

def test_half_open_failure_reopens_with_longer_timeout(yard):
    # Trip n: min(5000, 400 * 2^(n-1)) * [0.8, 1.2]: 320..480, then 640..960.
    b = start_broker(yard, "fail_threshold=1", "base_timeout_ms=400",
                     "max_timeout_ms=5000", "half_open_test_count=1")
    yard.worker(b, "ho", "fail")
    c = yard.client(b)
    fail_n(c, "ho", 1)
    t_open = time.monotonic()
    br = show(b, "ho")
    assert br["state"] == "open" and br["consecutive_trips"] == 1, br
    assert 0 < br["retry_in_ms"] <= 480, br
    wait_state(b, "ho", "half_open", timeout=3)
    first_open_s = time.monotonic() - t_open
    assert first_open_s >= 0.28, "half-open after %.2fs (< 320 ms)" % first_open_s

    # The one trial fails: open again, second step.
    r = call(c, "ho", b"trial")
    assert r["status"] == "error", r
    t_reopen = time.monotonic()
    br = show(b, "ho")
    assert br["state"] == "open", br
    assert br["trips"] == 2 and br["consecutive_trips"] == 2, br
    assert br["recovery_trials"] == 1 and br["recovery_success_rate"] == 0.0, br
    assert 480 < br["retry_in_ms"] <= 960, br
    r = call(c, "ho", b"refused")
    assert_circuit_open(r, "ho", 960)
    wait_state(b, "ho", "half_open", timeout=3)
    second_open_s = time.monotonic() - t_reopen
    assert second_open_s >= 0.55, "re-opened only %.2fs (< 640 ms)" % second_open_s
    assert show(b, "ho")["time_in_state_ms"]["open"] >= 900


# ---- d) operator reset through the CLI -------------------------------------

def test_cli_reset_closes_an_open_breaker(yard):
    b = start_broker(yard, "fail_threshold=2", *LONG)
    yard.worker(b, "rs", "fail")
    c = yard.client(b)
    fail_n(c, "rs", 2)
    assert show(b, "rs")["state"] == "open"
    p = yard.cli(b, ["submit", "rs", "x"], timeout=10)
    assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)
    assert b"circuit_open" in p.stderr, p.stderr

    p = yard.cli(b, ["breaker", "show", "rs"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert b"state: open" in p.stdout, p.stdout

    p = yard.cli(b, ["breaker", "reset", "rs", "--json"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1, p.stdout
    br = json.loads(lines[0])
    assert br["service"] == "rs" and br["state"] == "closed", br
    assert br["consecutive_failures"] == 0 and br["retry_in_ms"] == 0, br
    assert br["trips"] == 1, "reset must not clear the metrics: %r" % br
    assert br["config"]["fail_threshold"] == 2, br
    assert show(b, "rs")["state"] == "closed"
    # Tasks reach the worker again.
    r = call(c, "rs", b"again")
    assert r["status"] == "error" and "fail handler" in r.get("error", ""), r
    # Readable form; a reset of a closed breaker is fine too.
    p = yard.cli(b, ["breaker", "reset", "rs"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert b"state: closed" in p.stdout and b"fail_threshold: 2" in p.stdout, p.stdout


def test_outcomes_of_tasks_admitted_before_a_reset_do_not_count(yard):
    b = start_broker(yard, "fail_threshold=1", *LONG)
    w = yard.raw_worker(b, "gen", capacity=2)
    b.wait_workers("gen", 1)
    c = yard.client(b)
    c.submit([yw.Client.task(i, "gen", b"x", timeout_ms=10000)
              for i in ("g1", "g2")])
    t1, t2 = _take_tasks(w, 2)
    w.result(t1["job"], "error", error="e1")
    assert c.wait_result(t1["id"], 5)["status"] == "error"
    assert show(b, "gen")["state"] == "open"
    assert admin_json(b, "breaker reset gen")["state"] == "closed"
    # t2 was admitted before the reset: its failure does not re-open it.
    w.result(t2["job"], "error", error="e2")
    assert c.wait_result(t2["id"], 5)["status"] == "error"
    br = show(b, "gen")
    assert br["state"] == "closed" and br["consecutive_failures"] == 0, br
    assert br["total"] == 1 and br["trips"] == 1, br
    # A task admitted after the reset does count.
    c.submit1("gen", b"y", id="g3", timeout_ms=10000)
    (t3,) = _take_tasks(w, 1)
    w.result(t3["job"], "error", error="e3")
    assert c.wait_result("g3", 5)["status"] == "error"
    br = show(b, "gen")
    assert br["state"] == "open" and br["trips"] == 2, br


# ---- e) fallback service ---------------------------------------------------

def test_fallback_service_takes_tasks_while_open(yard):
    b = start_broker(yard, "fail_threshold=1", *LONG)
    yard.worker(b, "prim", "fail")
    yard.worker(b, "other", "echo")
    c = yard.client(b)
    fail_n(c, "prim", 1)
    assert show(b, "prim")["state"] == "open"

    r = call(c, "prim", b"to-other", fallback="other")
    assert r["status"] == "ok" and r["payload"] == b"to-other", r
    r = call(c, "prim", b"no-fallback")
    assert_circuit_open(r, "prim", 72000)
    # A fallback whose own breaker is open does not take it either:
    # "dead" has no worker; one timeout opens it.
    r = call(c, "dead", b"x", timeout_ms=100)
    assert r["status"] == "timeout", r
    assert show(b, "dead")["state"] == "open"
    r = call(c, "prim", b"to-dead", fallback="dead")
    assert_circuit_open(r, "prim", 72000)

    st = b.stats()["services"]
    assert st["prim"]["fallback"] == 1, st["prim"]
    assert st["prim"]["circuit_open"] == 2, st["prim"]
    assert st["prim"]["submitted"] == 4, st["prim"]
    assert st["prim"]["breaker"]["rejected"] == 3, st["prim"]["breaker"]
    assert st["other"]["submitted"] == 1 and st["other"]["completed"] == 1, st["other"]
    assert st["other"]["fallback"] == 0, st["other"]
    assert st["dead"]["fallback"] == 0 and st["dead"]["circuit_open"] == 0, st["dead"]


def test_fallback_to_the_admin_service_is_not_queued(yard):
    """SUSPECTED BROKER BUG (fails today). yard.admin is the broker's own
    service: no worker can serve it (READY naming it is refused) and it has
    no breaker. A task whose fallback is yard.admin must not be queued
    there until its deadline, nor turn yard.admin into a listed service; it
    should be answered at once (circuit_open: the fallback will not take
    it). Observed: the broker creates a regular service "yard.admin"
    (broker/client.c s_submit, service_require for the fallback; same in
    broker/breaker.c s_shed_task), the task waits there and is answered
    "timeout", and stats list "yard.admin" among the services."""
    b = start_broker(yard, "fail_threshold=1", *LONG)
    yard.worker(b, "pa", "fail")
    c = yard.client(b)
    fail_n(c, "pa", 1)
    assert show(b, "pa")["state"] == "open"
    t0 = time.monotonic()
    r = call(c, "pa", b"stats", timeout=6, fallback=yw.ADMIN_SERVICE,
             timeout_ms=3000)
    elapsed = time.monotonic() - t0
    assert r["status"] in ("circuit_open", "invalid"), (
        "fallback yard.admin answered %r after %.2fs" % (r, elapsed))
    assert elapsed < 1.0, elapsed
    assert yw.ADMIN_SERVICE not in b.stats()["services"], b.stats()["services"]


# ---- f) nothing waits behind an open breaker --------------------------------

def _take_tasks(w, n, timeout=5.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += w.next_tasks(max(0.0, deadline - time.monotonic()))
    assert len(got) == n, "worker got %r, wanted %d tasks" % (got, n)
    return got


def test_waiting_tasks_are_shed_when_breaker_opens(yard):
    b = start_broker(yard, "fail_threshold=2", *LONG)
    w = yard.raw_worker(b, "q", capacity=2)
    b.wait_workers("q", 1)
    yard.worker(b, "fb", "echo")
    c = yard.client(b)
    # A: fails once and waits out a long retry backoff (>= 16 s).
    c.submit1("q", b"a", id="A", retries=3, backoff_ms=20000, timeout_ms=30000)
    (a,) = _take_tasks(w, 1)
    w.result(a["job"], "error", error="boom A")
    b.wait_stats(lambda st: st["services"]["q"]["retried"] == 1, 5, "A delayed")
    # X and B go to the worker, C1..C3 queue behind them.
    ids = ["X", "B", "C1", "C2", "C3"]
    c.submit([yw.Client.task(i, "q", i.encode(), timeout_ms=30000,
                             **({"fallback": "fb"} if i == "C3" else {}))
              for i in ids])
    held = {t["id"]: t for t in _take_tasks(w, 2)}
    assert sorted(held) == ["B", "X"], held
    b.wait_stats(lambda st: st["services"]["q"]["queued"] == 4, 5,
                 "A delayed + C1..C3 queued")
    assert show(b, "q")["consecutive_failures"] == 1
    # B fails: second failure in a row, the breaker opens.
    t0 = time.monotonic()
    w.result(held["B"]["job"], "error", error="boom B")
    waiting = ["A", "C1", "C2", "C3"]
    got = c.wait_results(["B"] + waiting, 5)
    elapsed = time.monotonic() - t0
    assert set(got) == set(["B"] + waiting), "not answered: %r" % sorted(
        set(["B"] + waiting) - set(got))
    assert elapsed < 1.5, "waiting tasks answered after %.2fs" % elapsed
    assert got["B"]["status"] == "error", got["B"]
    for i in ("A", "C1", "C2"):
        assert_circuit_open(got[i], "q", 72000)
    assert got["C3"]["status"] == "ok" and got["C3"]["payload"] == b"C3", got["C3"]
    # X was in flight: it finishes normally, and cannot close the breaker.
    assert "X" not in c.results
    w.result(held["X"]["job"], "ok", b"x-done")
    r = c.wait_result("X", 5)
    assert r is not None and r["status"] == "ok" and r["payload"] == b"x-done", r
    w.idle(0.2)
    assert len(w.tasks) == 3, "the worker got more tasks: %r" % w.tasks

    st = b.stats()["services"]
    q = st["q"]
    assert q["circuit_open"] == 3 and q["fallback"] == 1, q
    assert q["failed"] == 1 and q["completed"] == 1 and q["retried"] == 1, q
    assert q["queued"] == 0 and q["in_flight"] == 0, q
    assert q["breaker"]["state"] == "open", q["breaker"]
    assert q["breaker"]["total"] == 2 and q["breaker"]["successful"] == 0, q["breaker"]
    assert st["fb"]["submitted"] == 1 and st["fb"]["completed"] == 1, st["fb"]
    c.pump(0.2)
    assert all(len(v) == 1 for v in c.results.values()), c.results


def test_retry_behind_breaker_that_opens_is_answered_at_once(yard):
    b = start_broker(yard, "fail_threshold=1", *LONG)
    yard.worker(b, "rt", "fail")
    c = yard.client(b)
    t0 = time.monotonic()
    r = call(c, "rt", b"x", retries=5, backoff_ms=5000, timeout_ms=20000)
    elapsed = time.monotonic() - t0
    assert_circuit_open(r, "rt", 72000)
    assert elapsed < 1.5, "answered after %.2fs (backoff 5 s)" % elapsed
    st = b.stats()["services"]["rt"]
    assert st["circuit_open"] == 1 and st["retried"] == 1, st
    assert st["queued"] == 0, st


# ---- g) the sliding-window rule ---------------------------------------------

def test_window_rule_opens_after_min_calls(yard):
    b = start_broker(yard, "fail_threshold=0", "window=10", "min_calls=8",
                     "failure_rate=0.5", *LONG)
    yard.worker(b, "fk", "flaky", extra=["--fail-rate", "1.0"])
    c = yard.client(b)
    fail_n(c, "fk", 7)
    br = show(b, "fk")
    # 7 failures in a row: the consecutive rule is off, the window rule
    # waits for min_calls.
    assert br["state"] == "closed" and br["consecutive_failures"] == 7, br
    fail_n(c, "fk", 1)
    br = show(b, "fk")
    assert br["state"] == "open" and br["trips"] == 1, br
    assert br["config"]["fail_threshold"] == 0 and br["config"]["window"] == 10, br
    assert_circuit_open(call(c, "fk"), "fk", 72000)


def test_window_rule_slides_over_the_last_calls(yard):
    # window 4: ok ok ok err -> 1/4 closed; err -> last 4 = ok ok err err,
    # 2/4 >= 0.5: open (over all 5 calls it would be 2/5 < 0.5).
    b = start_broker(yard, "fail_threshold=0", "window=4", "min_calls=4",
                     "failure_rate=0.5", *LONG)
    w = yard.raw_worker(b, "sw", capacity=1)
    b.wait_workers("sw", 1)
    c = yard.client(b)
    for i, outcome in enumerate(["ok", "ok", "ok", "error", "error"]):
        id = c.submit1("sw", b"p", id="sw-%d" % i, timeout_ms=10000)
        (t,) = _take_tasks(w, 1)
        w.result(t["job"], outcome, b"r", error="bad" if outcome == "error" else None)
        r = c.wait_result(id, 5)
        assert r is not None and r["status"] == outcome, r
        br = show(b, "sw")
        want = "open" if i == 4 else "closed"
        assert br["state"] == want, (i, outcome, br)
    assert br["total"] == 5 and br["failed"] == 2 and br["successful"] == 3, br


# ---- h) timeouts and slow calls ---------------------------------------------

def test_timeouts_open_the_breaker_by_default(yard):
    b = start_broker(yard, "fail_threshold=2", *LONG)
    yard.worker(b, "sl", "sleep", capacity=2, threads=2)
    c = yard.client(b)
    ids = [c.submit1("sl", b"3000", timeout_ms=200) for _ in range(2)]
    got = c.wait_results(ids, 5)
    assert [r["status"] for r in got.values()] == ["timeout"] * 2, got
    br = wait_state(b, "sl", "open", timeout=2)
    assert br["trips"] == 1 and br["failed"] == 2, br
    assert_circuit_open(call(c, "sl", b"10"), "sl", 72000)
    assert b.stats()["services"]["sl"]["timed_out"] == 2


def test_timeouts_do_not_count_with_count_error(yard):
    b = start_broker(yard, "fail_threshold=2", "count=error", *LONG)
    yard.worker(b, "sl", "sleep", capacity=4, threads=4)
    c = yard.client(b)
    ids = [c.submit1("sl", b"3000", timeout_ms=200) for _ in range(3)]
    got = c.wait_results(ids, 5)
    assert [r["status"] for r in got.values()] == ["timeout"] * 3, got
    br = show(b, "sl")
    assert br["config"]["count"] == ["error"], br
    assert br["state"] == "closed" and br["trips"] == 0, br
    assert br["total"] == 0 and br["consecutive_failures"] == 0, br
    assert b.stats()["services"]["sl"]["timed_out"] == 3
    r = call(c, "sl", b"10", timeout_ms=5000)
    assert r["status"] == "ok", r


def test_slow_successes_count_as_failures(yard):
    b = start_broker(yard, "fail_threshold=2", "slow_ms=100", *LONG)
    yard.worker(b, "slow", "sleep", capacity=2, threads=2)
    c = yard.client(b)
    ids = [c.submit1("slow", b"300", timeout_ms=5000) for _ in range(2)]
    got = c.wait_results(ids, 5)
    assert [r["status"] for r in got.values()] == ["ok"] * 2, got
    br = show(b, "slow")
    assert br["state"] == "open", br
    assert br["slow"] == 2 and br["failed"] == 2 and br["successful"] == 0, br


# ---- i) the `yard breaker` CLI -----------------------------------------------

def test_cli_breaker_list_show_set(yard):
    b = start_broker(yard)
    yard.worker(b, "svc", "fail")
    c = yard.client(b)

    p = yard.cli(b, ["breaker", "list", "--json"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert len(p.stdout.decode().splitlines()) == 1, p.stdout
    lst = json.loads(p.stdout)
    assert lst["defaults"]["fail_threshold"] == 5, lst
    assert lst["defaults"]["count"] == ["error", "timeout", "lost"], lst
    assert lst["services"]["svc"]["state"] == "closed", lst

    p = yard.cli(b, ["breaker", "list"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    out = p.stdout.decode()
    assert "SERVICE" in out and "STATE" in out and "RETRY-IN" in out, out
    assert any(l.split()[:2] == ["svc", "closed"] for l in out.splitlines()), out

    p = yard.cli(b, ["breaker", "show", "svc"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert b"state: closed" in p.stdout and b"fail_threshold: 5" in p.stdout, p.stdout

    p = yard.cli(b, ["breaker", "set", "svc", "fail_threshold=2"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert b"fail_threshold: 2" in p.stdout, p.stdout
    p = yard.cli(b, ["breaker", "show", "svc", "--json"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert json.loads(p.stdout)["config"]["fail_threshold"] == 2, p.stdout
    assert admin_json(b, "breaker list")["defaults"]["fail_threshold"] == 5

    # All or nothing: a bad combination is refused, nothing changes.
    before = show(b, "svc")["config"]
    p = yard.cli(b, ["breaker", "set", "svc", "window=5", "min_calls=30"], timeout=10)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith(b"yard: invalid: "), p.stderr
    assert b"min_calls" in p.stderr, p.stderr
    assert show(b, "svc")["config"] == before
    p = yard.cli(b, ["breaker", "set", "svc", "fail_threshold=3", "nosuch=1"], timeout=10)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert b"nosuch" in p.stderr, p.stderr
    assert show(b, "svc")["config"] == before

    # The defaults: a service follows those it did not set itself.
    p = yard.cli(b, ["breaker", "set", "*", "base_timeout_ms=60000",
                     "max_timeout_ms=60000", "--json"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    cfg = json.loads(p.stdout)
    assert cfg["base_timeout_ms"] == 60000 and cfg["fail_threshold"] == 5, cfg
    cfg = show(b, "svc")["config"]
    assert cfg["base_timeout_ms"] == 60000 and cfg["fail_threshold"] == 2, cfg

    # The new threshold is in force: two failures open it.
    fail_n(c, "svc", 2)
    assert show(b, "svc")["state"] == "open"
    p = yard.cli(b, ["breaker", "list"], timeout=10)
    assert any(l.split()[:2] == ["svc", "open"] for l in p.stdout.decode().splitlines()), p.stdout

    p = yard.cli(b, ["breaker", "show", "nosuch"], timeout=10)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert b"yard: invalid:" in p.stderr and b"unknown service 'nosuch'" in p.stderr, p.stderr
    assert p.stdout == b"", p.stdout


def test_cli_set_defaults_is_all_or_nothing_across_services(yard):
    b = start_broker(yard, "svc.min_calls=15")
    # window=10 would break svc (its own min_calls 15): refused, no change.
    p = yard.cli(b, ["breaker", "set", "*", "window=10"], timeout=10)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert b"yard: invalid:" in p.stderr and b"svc" in p.stderr, p.stderr
    assert admin_json(b, "breaker list")["defaults"]["window"] == 20
    assert show(b, "svc")["config"]["window"] == 20
    # A consistent change is followed by svc except for its own setting.
    p = yard.cli(b, ["breaker", "set", "*", "window=25", "min_calls=12"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert b"defaults:" in p.stdout and b"window: 25" in p.stdout, p.stdout
    cfg = show(b, "svc")["config"]
    assert cfg["window"] == 25 and cfg["min_calls"] == 15, cfg
    # yard.admin has no breaker.
    p = yard.cli(b, ["breaker", "set", "yard.admin", "fail_threshold=2"], timeout=10)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)


@pytest.mark.parametrize("args", [
    ["breaker", "bogus"],
    ["breaker"],
    ["breaker", "show"],
    ["breaker", "reset", "a", "b"],
    ["breaker", "set", "svc"],
    ["breaker", "set", "svc", "novalue"],
    ["breaker", "list", "extra"],
    ["breaker", "list", "--no-such-flag"],
    ["breaker", "list", "--timeout", "soon"],
    ["breaker", "show", "bad/name"],
], ids=["bogus", "none", "show-no-service", "reset-two", "set-nothing",
        "set-not-kv", "list-extra", "bad-flag", "bad-timeout", "bad-name"])
def test_cli_breaker_usage_errors_exit_2(yard, args):
    b = start_broker(yard)
    p = yard.cli(b, args, timeout=10)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "usage errors explain themselves on stderr"


def test_cli_breaker_help(yard):
    b = start_broker(yard)
    for args, word in ((["breaker", "--help"], b"reset"),
                       (["breaker", "set", "--help"], b"KEY=VALUE"),
                       (["breaker", "show", "-h"], b"SERVICE")):
        p = yard.cli(b, args, timeout=10)
        assert p.returncode == 0, (args, p.returncode, p.stderr)
        assert p.stdout.startswith(b"usage: yard breaker") and word in p.stdout, p.stdout
    p = yard.cli(b, ["--help"], timeout=10)
    assert b"breaker" in p.stdout, p.stdout


# ---- j) broker settings: flags, environment, config file --------------------

@pytest.mark.parametrize("specs,message", [
    (["fail_threshold=0", "window=0"], "fail_threshold and window are both 0"),
    (["nosuch=1"], "unknown breaker setting 'nosuch'"),
    (["window=5", "min_calls=6"], "min_calls (6) is larger than window (5)"),
    (["svc.fail_threshold=0", "svc.window=0"], "both 0"),
    (["failure_rate=2"], "failure_rate"),
    (["fail_threshold"], "not [SERVICE.]key=value"),
], ids=["never-opens", "unknown", "min-calls", "service-never-opens",
        "rate-range", "no-value"])
def test_broker_refuses_bad_breaker_flags(yard, specs, message):
    args = []
    for s in specs:
        args += ["--breaker", s]
    b = yard.broker(*args, start=False)
    b.start(wait=False)
    rc = b.proc.wait(5)
    assert rc == 2, "yard-broker %r exited %r" % (args, rc)
    err = b.proc.err_path.read_text(errors="replace")
    assert message in err, err


def test_breaker_settings_from_config_file_env_and_flags(yard, tmp_path):
    conf = tmp_path / "broker.conf"
    conf.write_text("# breaker settings\n"
                    "breaker.svc.fail_threshold = 2\n"
                    "breaker.window = 12\n"
                    "breaker.base_timeout_ms = 60000\n"
                    "breaker.max_timeout_ms = 60000\n"
                    "breaker.half_open_test_count = 2\n")
    yard.extra_env["YARD_BREAKER"] = ("other.min_calls=3 window=14 "
                                      "half_open_test_count=4")
    try:
        b = start_broker(yard, "window=16", extra=["--config", str(conf)])
    finally:
        del yard.extra_env["YARD_BREAKER"]
    lst = admin_json(b, "breaker list")
    # flag > environment > file, setting by setting.
    assert lst["defaults"]["window"] == 16, lst["defaults"]
    assert lst["defaults"]["fail_threshold"] == 5, lst["defaults"]
    assert lst["defaults"]["half_open_test_count"] == 4, lst["defaults"]
    assert lst["defaults"]["base_timeout_ms"] == 60000, lst["defaults"]
    svc = show(b, "svc")["config"]
    assert svc["fail_threshold"] == 2 and svc["window"] == 16, svc
    other = show(b, "other")["config"]
    assert other["fail_threshold"] == 5 and other["min_calls"] == 3, other
    # A service first seen later follows the defaults.
    c = yard.client(b)
    r = call(c, "plain", b"x", timeout_ms=50)
    assert r["status"] == "timeout", r
    plain = show(b, "plain")["config"]
    assert plain["fail_threshold"] == 5 and plain["window"] == 16, plain
    assert plain["min_calls"] == 10, plain
    # And the file's per-service threshold is in force for svc only.
    yard.worker(b, "svc", "fail")
    fail_n(c, "svc", 2)
    assert show(b, "svc")["state"] == "open"
    assert show(b, "plain")["state"] == "closed"
