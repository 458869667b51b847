"""`yard publish` and `yard subscribe` against a real broker (and, for the
broker-refusal path a real broker cannot be driven into, a scripted one).

Exit codes: publish 0 ok, 1 refused by the broker (--confirm), 2 usage,
3 no acknowledgement (--confirm), 6 broker unreachable (no --confirm);
subscribe 0 after --count events or an idle --timeout without --count,
3 idle --timeout before --count, 2 usage, 6 events endpoint unreachable."""

import json
import os
import subprocess
import threading
import time

import msgpack
import pytest
import zmq

import yardwire
from conftest import binary, free_port

PUBLISH_ACK = 0x11


def wait_subscribers(b, n, timeout=10.0):
    """The broker's stats show n event subscribers (a subscriber that got
    its acknowledgement is counted before it can print anything)."""
    b.wait_stats(lambda st: st["events"]["subscribers"] == n, timeout,
                 "%d event subscriber(s)" % n)


def json_lines(proc):
    text = proc.stdout_text()
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def test_publish_and_subscribe_json_lines(yard):
    b = yard.broker()
    sub = yard.cli_bg(b, ["subscribe", "--count", "2", "--timeout", "15000",
                          "demo."])
    wait_subscribers(b, 1)
    t0 = time.time()
    p = yard.cli(b, ["publish", "demo.a", "hello"], timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    # Not matching the prefix: never printed.
    p = yard.cli(b, ["publish", "other.x", "nope"], timeout=15)
    assert p.returncode == 0, (p.returncode, p.stderr)
    p = yard.cli(b, ["publish", "--json", "--source", "it", "--trace-id", "t-1",
                     "--meta", "k=v", "--meta", "empty=", "demo.b",
                     '{"k":[1,2],"f":1.5,"t":true,"n":null,"s":"x","neg":-7}'],
                 timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    rc = sub.wait(10)
    assert rc == 0, (rc, sub.stderr_tail())
    lines = json_lines(sub)
    assert len(lines) == 2, lines
    a, bb = lines
    assert list(a.keys()) == ["type", "source", "ts_us", "sn", "trace_id",
                              "meta", "payload"], a
    assert a["type"] == "demo.a"
    assert a["payload"] == "hello"
    assert a["source"] == "" and a["trace_id"] == "" and a["meta"] == {}
    assert a["sn"] == 1 and bb["sn"] == 2
    # Stamped by the broker with its wall clock.
    assert abs(a["ts_us"] / 1e6 - t0) < 60, (a["ts_us"], t0)
    assert bb["type"] == "demo.b"
    assert bb["payload"] == {"k": [1, 2], "f": 1.5, "t": True, "n": None,
                             "s": "x", "neg": -7}
    assert bb["source"] == "it" and bb["trace_id"] == "t-1"
    assert bb["meta"] == {"k": "v", "empty": ""}
    st = b.stats()["events"]
    assert st["published"] >= 3 and st["invalid"] == 0, st


def test_publish_confirm_and_stdin(yard):
    b = yard.broker()
    sub = yard.cli_bg(b, ["subscribe", "--count", "2", "--timeout", "15000",
                          "conf."])
    wait_subscribers(b, 1)
    p = yard.cli(b, ["publish", "--confirm", "conf.a", "x"], timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    p = yard.cli(b, ["publish", "--confirm", "--json", "conf.b", "-"],
                 input=b'["from", "stdin", 3]', timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert sub.wait(10) == 0, sub.stderr_tail()
    lines = json_lines(sub)
    assert [ln["payload"] for ln in lines] == ["x", ["from", "stdin", 3]]


def test_subscribe_source_filter(yard):
    b = yard.broker()
    sub = yard.cli_bg(b, ["subscribe", "--count", "1", "--timeout", "15000",
                          "--source", "keep", "f."])
    wait_subscribers(b, 1)
    for source in ("other", "keep"):
        p = yard.cli(b, ["publish", "--source", source, "f.x", source],
                     timeout=15)
        assert p.returncode == 0, (p.returncode, p.stderr)
    assert sub.wait(10) == 0, sub.stderr_tail()
    lines = json_lines(sub)
    assert len(lines) == 1, lines
    assert lines[0]["source"] == "keep" and lines[0]["payload"] == "keep"
    # The filtered one was delivered (sn 1), just not printed.
    assert lines[0]["sn"] == 2


@pytest.mark.parametrize("etype", ["", "bad type", "x" * 129, "semi;colon"],
                         ids=["empty", "space", "too-long", "semicolon"])
def test_publish_invalid_type_fails_clearly(yard, etype):
    b = yard.broker()
    p = yard.cli(b, ["publish", "--confirm", etype, "x"], timeout=15)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert b"bad event type" in p.stderr, p.stderr
    assert b.stats()["events"]["published"] <= 1  # system.startup only


def test_publish_refused_by_broker_exits_1():
    """A scripted broker answers the confirmed PUBLISH with an invalid
    PUBLISH_ACK: yard prints the broker's reason and exits 1."""
    port = free_port()
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:%d" % port)
    seen = []

    def serve():
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not seen:
            if not poller.poll(100):
                continue
            frames = router.recv_multipart()
            ident, hdr, bodies = frames[0], frames[1], frames[2:]
            if hdr[3] != yardwire.PUBLISH:
                continue
            ev = yardwire.unpack(bodies[0])
            seen.append(ev)
            ack = {"seq": ev["seq"], "status": "invalid",
                   "error": "bad_field: PUBLISH body 0: not today"}
            router.send_multipart([ident, yardwire.header("B", PUBLISH_ACK),
                                   msgpack.packb(ack, use_bin_type=True)])

    t = threading.Thread(target=serve)
    t.start()
    try:
        env = dict(os.environ, YARD_BROKER="tcp://127.0.0.1:%d" % port)
        p = subprocess.run([binary("yard"), "publish", "--confirm", "demo.x",
                            "y"], capture_output=True, env=env, timeout=15)
    finally:
        t.join()
        router.close()
        ctx.term()
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert b"bad_field: PUBLISH body 0: not today" in p.stderr, p.stderr
    assert seen and seen[0]["ack"] is True and seen[0]["type"] == "demo.x"
    assert seen[0]["payload"] == "y"


def test_subscribe_all_gets_the_retained_startup(yard):
    """A subscriber of everything gets the broker's retained system.startup
    first (PROTOCOL.md 8.7), then nothing: the idle timeout ends it."""
    b = yard.broker()
    p = yard.cli(b, ["subscribe", "--timeout", "500"], timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1, lines
    ev = json.loads(lines[0])
    assert ev["type"] == "system.startup" and ev["sn"] == 1, ev
    assert ev["source"] == "yard-broker" and ev["payload"]["endpoint"] == b.endpoint


def test_subscribe_idle_timeout(yard):
    b = yard.broker()
    t0 = time.monotonic()
    p = yard.cli(b, ["subscribe", "--timeout", "500", "nothing."], timeout=15)
    took = time.monotonic() - t0
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == b""
    assert 0.5 <= took < 5.0, took
    # With --count not reached: exit 3, and it says so.
    p = yard.cli(b, ["subscribe", "--count", "1", "--timeout", "500", "none."],
                 timeout=15)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert b"0 of 1" in p.stderr, p.stderr
    # The subscribers said goodbye.
    wait_subscribers(b, 0)


def test_subscribe_sees_task_events(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    sub = yard.cli_bg(b, ["subscribe", "--count", "2", "--timeout", "15000",
                          "task."])
    wait_subscribers(b, 1)
    p = yard.cli(b, ["submit", "--id", "ev-task-1", "echo", "x"], timeout=15)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert sub.wait(10) == 0, sub.stderr_tail()
    lines = json_lines(sub)
    assert [ln["type"] for ln in lines] == ["task.submitted", "task.completed"]
    for ln in lines:
        assert ln["source"] == "yard-broker"
        assert ln["payload"]["id"] == "ev-task-1"
        assert ln["payload"]["service"] == "echo"
    assert lines[1]["payload"]["attempts"] == 1


def test_unreachable_broker(yard):
    dead = "tcp://127.0.0.1:%d" % free_port()
    env = {"YARD_BROKER": dead, "YARD_EVENTS": dead}
    t0 = time.monotonic()
    p = yard.cli(None, ["publish", "--timeout", "500", "demo.a", "x"],
                 env_extra=env, timeout=15)
    assert p.returncode == 6, (p.returncode, p.stdout, p.stderr)
    assert b"unreachable" in p.stderr
    p = yard.cli(None, ["publish", "--confirm", "--timeout", "500", "demo.a",
                        "x"], env_extra=env, timeout=15)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert b"no acknowledgement" in p.stderr
    p = yard.cli(None, ["subscribe", "--timeout", "500"], env_extra=env,
                 timeout=15)
    assert p.returncode == 6, (p.returncode, p.stdout, p.stderr)
    assert time.monotonic() - t0 < 8.0


@pytest.mark.parametrize("args", [
    ["publish", "--no-such-flag", "a.b", "x"],
    ["publish"],
    ["publish", "a.b"],
    ["publish", "a.b", "x", "extra"],
    ["publish", "--timeout", "soon", "a.b", "x"],
    ["publish", "--timeout"],
    ["publish", "--meta", "novalue", "a.b", "x"],
    ["publish", "--meta", "=v", "a.b", "x"],
    ["publish", "--json", "a.b", "{bad json"],
    ["publish", "--source", "s" * 129, "a.b", "x"],
    ["subscribe", "--no-such-flag"],
    ["subscribe", "--count", "0"],
    ["subscribe", "--count", "many"],
    ["subscribe", "--timeout", "-5"],
    ["subscribe", "bad type"],
], ids=["pub-bad-flag", "pub-no-args", "pub-no-payload", "pub-extra",
        "pub-bad-timeout", "pub-timeout-no-value", "pub-meta-no-eq",
        "pub-meta-no-key", "pub-bad-json", "pub-long-source", "sub-bad-flag",
        "sub-count-0", "sub-count-word", "sub-timeout-neg", "sub-bad-type"])
def test_usage_errors_exit_2(yard, args):
    b = yard.broker()
    p = yard.cli(b, args, timeout=10)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "usage errors explain themselves on stderr"


def test_help_lists_event_commands(yard):
    p = yard.cli(None, ["--help"], timeout=10)
    assert p.returncode == 0
    assert b"publish TYPE PAYLOAD" in p.stdout and b"subscribe" in p.stdout
    for cmd in ("publish", "subscribe"):
        p = yard.cli(None, [cmd, "--help"], timeout=10)
        assert p.returncode == 0, (cmd, p.stderr)
        assert b"usage: yard " + cmd.encode() in p.stdout
        assert b"--timeout" in p.stdout
    p = yard.cli(None, ["subscribe", "--help"], timeout=10)
    assert b"$bin" in p.stdout  # the payload conventions are documented


def test_subscribe_payload_conventions(yard):
    """msgpack that has no JSON twin, published raw: bin and non-UTF-8 str
    as {"$bin": base64}, ext as {"$ext", "$data"}, integers past 2^63-1 as
    decimal strings, non-string map keys as their JSON text, NaN as null."""
    b = yard.broker()
    sub = yard.cli_bg(b, ["subscribe", "--count", "2", "--timeout", "15000",
                          "raw."])
    wait_subscribers(b, 1)
    c = yard.client(b)
    payload = {"b": b"\x00\x01\xff", 7: "int key", "u": 2 ** 64 - 1,
               "f": float("nan"), "e": msgpack.ExtType(5, b"xy"),
               "l": [True, None, -1, 0.25]}
    c.send(yardwire.PUBLISH, [{"type": "raw.a", "payload": payload}])
    # A str that is not UTF-8 (D9: payload bytes are not checked).
    raw = b"\x82\xa4type\xa5raw.b\xa7payload\xa2\xc3\x28"
    c.send(yardwire.PUBLISH, [raw])
    assert sub.wait(10) == 0, sub.stderr_tail()
    a, bb = json_lines(sub)
    assert a["payload"] == {"b": {"$bin": "AAH/"}, "7": "int key",
                            "u": "18446744073709551615", "f": None,
                            "e": {"$ext": 5, "$data": "eHk="},
                            "l": [True, None, -1, 0.25]}, a
    assert bb["payload"] == {"$bin": "wyg="}, bb
