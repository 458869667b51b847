"""The yard CLI (submit, batch, stats) and the flags of every program.

Exit codes of `yard`: 0 ok, 1 error/invalid, 2 usage, 3 timeout,
4 rejected/circuit_open, 5 cancelled/shutdown, 6 unreachable.
The CLI finds the broker through YARD_BROKER (set by the fixtures)."""

import json
import signal
import subprocess
import time

import pytest

from conftest import free_port

PROGRAMS = ["yard-broker", "yard-worker", "yard"]


def test_submit_prints_payload_and_exits_0(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    p = yard.cli(b, ["submit", "echo", "hello world"], timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.rstrip(b"\n") == b"hello world", p.stdout


def test_submit_timeout_exits_3(yard):
    b = yard.broker()
    yard.worker(b, "sleep", "sleep", capacity=1, threads=1)
    t0 = time.monotonic()
    p = yard.cli(b, ["submit", "--timeout", "500", "sleep", "5000"], timeout=15)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "the error goes to stderr"
    assert time.monotonic() - t0 < 4.0


def test_submit_handler_error_exits_1_and_retries_flag_is_sent(yard):
    b = yard.broker()
    yard.worker(b, "fail", "fail")
    p = yard.cli(b, ["submit", "--retries", "2", "fail", "x"], timeout=15)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip()
    st = b.stats()
    assert st["services"]["fail"]["retried"] == 2, st["services"]["fail"]


def test_submit_backoff_zero_is_sent_as_zero(yard):
    """--backoff 0 means retry at once (an explicit backoff_ms 0 on the
    wire), not the default 100 ms: with the default, 16 retries would need
    over 6 s of backoff, far past the 3 s deadline. (The breaker would
    open after 5 failures, so it is off here.)"""
    b = yard.broker("--breaker", "enabled=false")
    yard.worker(b, "fail", "fail")
    p = yard.cli(b, ["submit", "--retries", "16", "--backoff", "0", "--timeout", "3000",
                     "fail", "x"], timeout=15)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert b.stats()["services"]["fail"]["retried"] == 16


@pytest.mark.parametrize("args", [
    ["submit", "--no-such-flag", "echo", "x"],
    ["submit"],
    ["submit", "echo"],
    ["submit", "--timeout", "soon", "echo", "x"],
    ["submit", "--priority", "10", "echo", "x"],
    ["no-such-command"],
    [],
], ids=["bad-flag", "no-args", "no-payload", "bad-timeout", "bad-priority",
        "bad-command", "nothing"])
def test_submit_usage_errors_exit_2(yard, args):
    b = yard.broker()
    p = yard.cli(b, args, timeout=10)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "usage errors explain themselves on stderr"


def test_submit_rejected_exits_4(yard):
    b = yard.broker("--max-queue", "1")
    c = yard.client(b)
    c.submit1("nobody", b"x", timeout_ms=30000)
    b.wait_stats(lambda st: st["services"]["nobody"]["queued"] == 1, 5, "queue full")
    p = yard.cli(b, ["submit", "--timeout", "5000", "nobody", "y"], timeout=10)
    assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)


def test_submit_during_shutdown_exits_5(yard):
    b = yard.broker("--grace", "5000")
    yard.worker(b, "sleep", "sleep", capacity=1, threads=1)
    c = yard.client(b)
    c.submit1("sleep", b"3000", timeout_ms=10000)
    b.wait_stats(lambda st: st["services"]["sleep"]["in_flight"] == 1, 5, "in flight")
    b.proc.signal(signal.SIGTERM)
    time.sleep(0.3)  # let the broker see the signal first (ordering slack)
    p = yard.cli(b, ["submit", "--timeout", "2000", "sleep", "1"], timeout=10)
    assert p.returncode == 5, (p.returncode, p.stdout, p.stderr)


def test_submit_unreachable_broker_fails_in_bounded_time(yard):
    dead = "tcp://127.0.0.1:%d" % free_port()
    t0 = time.monotonic()
    p = yard.cli(None, ["submit", "--timeout", "500", "echo", "x"], timeout=15,
                 env_extra={"YARD_BROKER": dead})
    # exit 6 "unreachable": no reply from the broker by timeout + 2 s
    assert p.returncode == 6, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip()
    assert time.monotonic() - t0 < 6.0


def test_submit_priority_flag_is_sent(yard):
    b = yard.broker()
    c = yard.client(b)
    ids = [c.submit1("sleep", b"300", id="low-%d" % i, timeout_ms=30000) for i in range(5)]
    cli = yard.cli_bg(b, ["submit", "--timeout", "20000", "--priority", "9", "sleep", "1"])
    b.wait_stats(lambda st: st["services"]["sleep"]["queued"] == 6, 5, "6 tasks queued")
    yard.worker(b, "sleep", "sleep", capacity=1, threads=1, wait=False)
    rc = cli.wait(15)
    assert rc == 0, (rc, cli.stderr_tail())
    c.pump(0)
    done_before = len(c.results)
    assert done_before <= 1, "priority 9 task finished after %d priority-0 tasks" % done_before
    assert len(c.wait_results(ids, 10)) == 5


def test_batch_prints_one_json_line_per_input_line(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo", capacity=16)
    lines = ["line-%03d" % i for i in range(300)]
    p = yard.cli(b, ["batch", "echo"], input=("\n".join(lines) + "\n").encode(), timeout=30)
    assert p.returncode == 0, (p.returncode, p.stderr)
    out = [ln for ln in p.stdout.decode().splitlines() if ln.strip()]
    assert len(out) == len(lines), "%d JSON lines for %d input lines" % (len(out), len(lines))
    recs = [json.loads(ln) for ln in out]
    by_index = {}
    for r in recs:
        for k in ("index", "id", "status", "payload", "error", "attempts"):
            assert k in r, (k, r)
        assert r["index"] not in by_index, "index %r twice" % r["index"]
        by_index[r["index"]] = r
    assert sorted(by_index) == list(range(len(lines)))
    for i, ln in enumerate(lines):
        assert by_index[i]["status"] == "ok", by_index[i]
        assert by_index[i]["payload"] == ln, by_index[i]
    assert len({r["id"] for r in recs}) == len(recs), "ids must be distinct"


def test_batch_reports_failures_per_line(yard):
    b = yard.broker()
    yard.worker(b, "fail", "fail")
    p = yard.cli(b, ["batch", "fail"], input=b"a\nb\n", timeout=15)
    recs = [json.loads(ln) for ln in p.stdout.decode().splitlines() if ln.strip()]
    assert len(recs) == 2, (p.returncode, p.stdout, p.stderr)
    for r in recs:
        assert r["status"] == "error" and r["error"], r
        assert r["attempts"] == 1, r


def test_stats_json(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    for i in range(3):
        p = yard.cli(b, ["submit", "echo", "s%d" % i], timeout=10)
        assert p.returncode == 0, p.stderr
    p = yard.cli(b, ["stats", "--json"], timeout=10)
    assert p.returncode == 0, (p.returncode, p.stderr)
    st = json.loads(p.stdout)
    assert isinstance(st, dict)
    assert st["total"]["completed"] >= 3, st["total"]
    assert st["services"]["echo"]["completed"] >= 3
    assert st["broker"]["version"] == "0.1.0"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_help_exits_0(yard, prog):
    r = subprocess.run([yard.bin(prog), "--help"], capture_output=True, timeout=10,
                       env=yard.base_env())
    assert r.returncode == 0, (prog, r.returncode, r.stderr)
    assert (r.stdout + r.stderr).strip(), "%s --help printed nothing" % prog
    assert b"--" in r.stdout + r.stderr, "%s --help lists no flags" % prog


@pytest.mark.parametrize("prog", PROGRAMS)
def test_bad_flag_exits_2(yard, prog):
    r = subprocess.run([yard.bin(prog), "--no-such-flag"], capture_output=True, timeout=10,
                       env=yard.base_env())
    assert r.returncode == 2, (prog, r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip(), "%s: bad flag must be explained on stderr" % prog


@pytest.mark.parametrize("args", [
    ["--max-queue", "abc"], ["--max-queue", "-1"], ["--grace", "1s"], ["--log-level", "loud"],
    ["--broker"],
], ids=["max-queue-abc", "max-queue-neg", "grace-unit", "log-level", "missing-value"])
def test_broker_bad_value_exits_2(yard, args):
    r = subprocess.run([yard.bin("yard-broker")] + args, capture_output=True, timeout=10,
                       env=yard.base_env())
    assert r.returncode == 2, (args, r.returncode, r.stderr)


def test_broker_version(yard):
    r = subprocess.run([yard.bin("yard-broker"), "--version"], capture_output=True, timeout=10,
                       env=yard.base_env())
    assert r.returncode == 0, r
    assert b"0.1.0" in r.stdout + r.stderr


def test_worker_bad_handler_fails(yard):
    r = subprocess.run([yard.bin("yard-worker"), "--handler", "no-such-handler",
                        "--broker", "tcp://127.0.0.1:%d" % free_port()],
                       capture_output=True, timeout=10, env=yard.base_env())
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip()
