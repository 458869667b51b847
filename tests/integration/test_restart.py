"""Broker restart: kill -9 the broker and start a new one on the same port.
The C client (yard submit) re-sends after broker silence and still gets its
answer; yard-worker notices (silence or DISCONNECT) and registers again."""

import time


def test_worker_reregisters_after_broker_restart(yard):
    b = yard.broker()
    w = yard.worker(b, "echo", "echo")
    c = yard.client(b)
    r = c.call("echo", b"before")
    assert r is not None and r["status"] == "ok"
    b.kill9()
    t0 = time.monotonic()
    b.restart()
    b.wait_workers("echo", 1, timeout=15)
    took = time.monotonic() - t0
    assert w.alive(), "yard-worker exited when its broker died"
    r = c.call("echo", b"after", timeout=5)
    assert r is not None and r["status"] == "ok" and r["payload"] == b"after", r
    # liveness 3 s + backoff (5 s cap): well under 10 s
    assert took < 10, "worker took %.1fs to re-register" % took


def test_cli_waiting_on_task_survives_broker_restart(yard):
    b = yard.broker()
    w = yard.worker(b, "sleep", "sleep", capacity=1, threads=1)
    cli = yard.cli_bg(b, ["submit", "--timeout", "15000", "sleep", "2000"])
    b.wait_stats(lambda st: st.get("services", {}).get("sleep", {}).get("in_flight") == 1,
                 10, "the CLI's task in flight on the worker")
    b.kill9()
    b.restart()
    rc = cli.wait(25)
    assert rc is not None, "yard submit still waiting 25 s after the broker restart"
    assert rc == 0, "yard submit exit %r after broker restart; stderr:\n%s" % (
        rc, cli.stderr_tail())
    assert w.alive()
    st = b.stats()
    assert st["services"]["sleep"]["workers"] == 1, st["services"]["sleep"]
    assert st["services"]["sleep"]["completed"] >= 1, st["services"]["sleep"]


def test_cli_submitted_while_broker_down_is_answered_when_it_returns(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    b.kill9()
    cli = yard.cli_bg(b, ["submit", "--timeout", "20000", "echo", "patience"])
    assert cli.wait(0.5) is None, "yard submit gave up at once while the broker was down"
    b.restart()
    rc = cli.wait(20)
    assert rc == 0, (rc, cli.stderr_tail())
    assert cli.stdout_text().rstrip("\n") == "patience"
