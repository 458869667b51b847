"""Bad input sent raw to the broker: every case gets the documented ERROR
(or RESULT status "invalid", or DISCONNECT for a worker), the broker never
crashes, and after every bad message a well-behaved client still gets its
result. One broker serves the whole module, so damage would carry over.

Expected replies follow proto/PROTOCOL.md section 9 and the
YARD_ERRCODE_* strings in proto/yard_proto.h."""

import os
import random

import pytest

import yardwire as yw

C = "C"
W = "W"


def body(id, service="echo", payload=b"x", **kw):
    d = {"id": id, "service": service, "payload": payload}
    d.update(kw)
    return yw.pack(d)


def raw(role, cmd, *bodies, version=1, magic=yw.MAGIC):
    return [yw.header(role, cmd, version, magic)] + list(bodies)


# expectation kinds
def ERR(*codes, no_results=False):
    return ("error", set(codes), no_results)


def INVALID(id):
    return ("invalid", id)


def ERR_OR_INVALID(id, *codes):
    return ("either", id, set(codes))


DISCONNECT = ("disconnect",)

_deep = 1
for _ in range(12):
    _deep = [_deep]

_submit_hdr = yw.header(C, yw.SUBMIT)

CASES = {
    # header frame
    "bad_magic": (raw(C, yw.SUBMIT, body("h1"), magic=ord("X")), ERR("malformed")),
    "header_3_bytes": ([b"YC\x01", body("h2")], ERR("malformed")),
    "header_5_bytes": ([_submit_hdr + b"\x00", body("h3")], ERR("malformed")),
    "header_empty": ([b"", body("h4")], ERR("malformed")),
    "unknown_role": (raw("Z", yw.SUBMIT, body("h5")), ERR("malformed")),
    "wrong_version_2": (raw(C, yw.SUBMIT, body("h6"), version=2), ERR("bad_version")),
    "wrong_version_0": (raw(C, yw.SUBMIT, body("h7"), version=0), ERR("bad_version")),
    # commands
    "unknown_command_0x7f": (raw(C, 0x7F, body("c1")), ERR("unknown_command")),
    "command_0": (raw(C, 0x00, body("c2")), ERR("unknown_command")),
    "publish_empty_type": (raw(C, 0x10, yw.pack({"type": ""})), ERR("bad_field")),
    "publish_not_a_map": (raw(C, 0x10, b"\x91\x01"), ERR("malformed")),
    "subscribe_on_tasks_endpoint": (raw(C, 0x12, yw.pack({"types": []})),
                                    ERR("unknown_command")),
    "reserved_0x20_chunk": (raw(C, 0x20, yw.pack({"id": "x"})), ERR("unknown_command")),
    "client_sends_task": (raw(C, yw.TASK, yw.pack({"job": 1, "id": "c3", "service": "echo"})),
                          ERR("unknown_command")),
    "client_sends_ready": (raw(C, yw.READY, yw.pack({"service": "echo", "capacity": 1})),
                           ERR("unknown_command")),
    "client_sends_result": (raw(C, yw.RESULT, yw.pack({"job": 1, "status": "ok"})),
                            ERR("unknown_command")),
    # body counts
    "submit_no_bodies": (raw(C, yw.SUBMIT), ERR("bad_frames")),
    "cancel_no_bodies": (raw(C, yw.CANCEL), ERR("bad_frames")),
    "heartbeat_with_body": (raw(C, yw.HEARTBEAT, yw.pack({})), ERR("bad_frames")),
    "submit_257_bodies": (raw(C, yw.SUBMIT, *[body("many-%d" % i) for i in range(257)]),
                          ERR("bad_frames", no_results=True)),
    # broken msgpack
    "truncated_msgpack_end": (raw(C, yw.SUBMIT, yw.pack({"service": "echo", "payload": b"abc",
                                                         "id": "trunc-1"})[:-2]),
                              ERR("malformed")),
    "truncated_msgpack_half": (raw(C, yw.SUBMIT, body("trunc-2")[:9]), ERR("malformed")),
    "map_claims_2pow32_entries": (raw(C, yw.SUBMIT, b"\xdf\xff\xff\xff\xff"),
                                  ERR("malformed", "too_large")),
    "array_claims_2pow32_items": (raw(C, yw.SUBMIT, b"\xdd\xff\xff\xff\xff"),
                                  ERR("malformed", "too_large")),
    "str_claims_4GiB": (raw(C, yw.SUBMIT, b"\x81\xa2id\xdb\xff\xff\xff\xff"),
                        ERR("malformed", "too_large")),
    "never_used_byte_0xc1": (raw(C, yw.SUBMIT, b"\xc1"), ERR("malformed")),
    "empty_body": (raw(C, yw.SUBMIT, b""), ERR("malformed")),
    "body_not_a_map": (raw(C, yw.SUBMIT, yw.pack([1, 2, 3])), ERR("malformed", "bad_field")),
    "body_nil": (raw(C, yw.SUBMIT, b"\xc0"), ERR("malformed", "bad_field")),
    "trailing_bytes": (raw(C, yw.SUBMIT, body("trail-1") + b"\x00"),
                       ERR_OR_INVALID("trail-1", "malformed")),
    "nesting_too_deep": (raw(C, yw.SUBMIT, body("deep-1", zz=_deep)),
                         ERR_OR_INVALID("deep-1", "malformed", "too_large")),
    # field rules, id readable -> RESULT invalid
    "timeout_ms_is_str": (raw(C, yw.SUBMIT, body("ft-1", timeout_ms="soon")), INVALID("ft-1")),
    "timeout_ms_zero": (raw(C, yw.SUBMIT, body("ft-2", timeout_ms=0)), INVALID("ft-2")),
    "timeout_ms_over_24h": (raw(C, yw.SUBMIT, body("ft-3", timeout_ms=86400001)), INVALID("ft-3")),
    "timeout_ms_negative": (raw(C, yw.SUBMIT, body("ft-4", timeout_ms=-5)), INVALID("ft-4")),
    "priority_10": (raw(C, yw.SUBMIT, body("ft-5", priority=10)), INVALID("ft-5")),
    "retries_17": (raw(C, yw.SUBMIT, body("ft-6", retries=17)), INVALID("ft-6")),
    "backoff_over_max": (raw(C, yw.SUBMIT, body("ft-7", backoff_ms=60001)), INVALID("ft-7")),
    "payload_is_int": (raw(C, yw.SUBMIT, body("ft-8", payload=42)), INVALID("ft-8")),
    "payload_is_map": (raw(C, yw.SUBMIT, body("ft-9", payload={"a": 1})), INVALID("ft-9")),
    "service_is_int": (raw(C, yw.SUBMIT, body("ft-10", service=7)), INVALID("ft-10")),
    "headers_is_list": (raw(C, yw.SUBMIT, body("ft-11", headers=["a"])), INVALID("ft-11")),
    "headers_value_int": (raw(C, yw.SUBMIT, body("ft-12", headers={"k": 1})), INVALID("ft-12")),
    "missing_service": (raw(C, yw.SUBMIT, yw.pack({"id": "ms-1", "payload": b"x"})),
                        INVALID("ms-1")),
    "service_bad_chars": (raw(C, yw.SUBMIT, body("sv-1", service="ec ho!")), INVALID("sv-1")),
    "service_slash": (raw(C, yw.SUBMIT, body("sv-2", service="../etc")), INVALID("sv-2")),
    "service_empty": (raw(C, yw.SUBMIT, body("sv-3", service="")), INVALID("sv-3")),
    "service_129_chars": (raw(C, yw.SUBMIT, body("sv-4", service="s" * 129)), INVALID("sv-4")),
    "service_nul_byte": (raw(C, yw.SUBMIT, body("sv-5", service="ec\x00ho")), INVALID("sv-5")),
    "payload_over_4MiB": (raw(C, yw.SUBMIT, body("big-1", payload=b"\x00" * (yw.MAX_PAYLOAD + 1))),
                          INVALID("big-1")),
    # id unreadable -> ERROR
    "missing_id": (raw(C, yw.SUBMIT, yw.pack({"service": "echo", "payload": b"x"})),
                   ERR("bad_field")),
    "id_is_int": (raw(C, yw.SUBMIT, yw.pack({"id": 42, "service": "echo", "payload": b"x"})),
                  ERR("bad_field")),
    "id_empty": (raw(C, yw.SUBMIT, body("")), ERR_OR_INVALID("", "bad_field")),
    "id_129_bytes": (raw(C, yw.SUBMIT, body("i" * 129)), ERR_OR_INVALID("i" * 129, "bad_field")),
    "cancel_id_is_int": (raw(C, yw.CANCEL, yw.pack({"id": 5})), ERR("bad_field")),
    # size
    "body_frame_5MiB": (raw(C, yw.SUBMIT, body("big-5", payload=b"\x01" * (5 * 1024 * 1024))),
                        ERR("too_large")),
    # worker before READY
    "worker_result_before_ready": (raw(W, yw.RESULT, yw.pack({"job": 1, "status": "ok",
                                                              "payload": b""})), DISCONNECT),
    "worker_heartbeat_before_ready": (raw(W, yw.HEARTBEAT), DISCONNECT),
    "worker_ready_capacity_too_big": (raw(W, yw.READY, yw.pack({"service": "echo",
                                                                "capacity": 10001})),
                                      ERR("bad_field")),
    "worker_ready_missing_service": (raw(W, yw.READY, yw.pack({"capacity": 1})),
                                     ERR("bad_field")),
    "worker_sends_submit": (raw(W, yw.SUBMIT, body("ws-1")), ERR("unknown_command")),
}


@pytest.fixture(scope="module")
def env(yard_module):
    b = yard_module.broker()
    yard_module.worker(b, "echo", "echo", capacity=8)
    good = yard_module.client(b)
    return yard_module, b, good


def assert_good_client_still_served(env, tag):
    y, b, good = env
    assert b.proc.alive(), "yard-broker died (exit %s) after %s:\n%s" % (
        b.proc.popen.returncode, tag, b.proc.stderr_tail())
    payload = b"after-" + tag.encode() + os.urandom(4).hex().encode()
    r = good.call("echo", payload, timeout=5)
    assert r is not None, "well-behaved client got no result after %s" % tag
    assert r["status"] == "ok" and r["payload"] == payload, r


def check_error_msg(m, codes, case):
    assert m is not None, "%s: no reply at all" % case
    assert m.raw_header == yw.header("B", yw.ERROR), "%s: expected ERROR, got %r" % (case, m)
    assert len(m.bodies) == 1, m
    e = m.bodies[0]
    assert isinstance(e, dict), m
    assert e.get("code") in codes, "%s: ERROR code %r, expected one of %r (%r)" % (
        case, e.get("code"), sorted(codes), e)
    assert isinstance(e.get("message"), str) and e["message"], e


@pytest.mark.parametrize("case", list(CASES))
def test_bad_message(env, case):
    y, b, good = env
    frames, exp = CASES[case]
    bad = y.client(b)
    bad.send_frames(frames)
    m, _ = bad.recv_until(5, lambda m: m.cmd != yw.HEARTBEAT)
    if exp[0] == "error":
        check_error_msg(m, exp[1], case)
        if exp[2]:
            bad.pump(0.5)
            assert not bad.results, "%s: message refused but tasks ran: %d results" % (
                case, len(bad.results))
    elif exp[0] == "invalid":
        assert m is not None, "%s: no reply" % case
        assert m.raw_header == yw.header("B", yw.RESULT), "%s: expected RESULT invalid, got %r" % (case, m)
        assert len(m.bodies) == 1 and m.bodies[0]["id"] == exp[1], m
        assert m.bodies[0]["status"] == "invalid", m
        assert m.bodies[0].get("error"), "invalid result must say why: %r" % m
    elif exp[0] == "either":
        assert m is not None, "%s: no reply" % case
        if m.cmd == yw.RESULT:
            assert m.bodies[0]["id"] == exp[1] and m.bodies[0]["status"] == "invalid", m
        else:
            check_error_msg(m, exp[2], case)
    elif exp[0] == "disconnect":
        assert m is not None, "%s: no reply" % case
        assert m.raw_header == yw.header("B", yw.DISCONNECT), "%s: expected DISCONNECT, got %r" % (case, m)
    bad.close()
    assert_good_client_still_served(env, case)


def test_batch_with_one_bad_body_processes_the_others(env):
    y, b, good = env
    c = y.client(b)
    c.send_frames(raw(C, yw.SUBMIT, body("mix-a", payload=b"A"),
                      body("mix-b", priority=99), body("mix-c", payload=b"C")))
    got = c.wait_results(["mix-a", "mix-b", "mix-c"], 5)
    assert got.get("mix-b", {}).get("status") == "invalid", got
    assert got.get("mix-a", {}).get("status") == "ok" and got["mix-a"]["payload"] == b"A", got
    assert got.get("mix-c", {}).get("status") == "ok" and got["mix-c"]["payload"] == b"C", got
    assert_good_client_still_served(env, "mixed batch")


def test_unknown_fields_are_ignored_and_str_payload_accepted(env):
    y, b, good = env
    c = y.client(b)
    c.send_frames(raw(C, yw.SUBMIT, yw.pack({"id": "unk-1", "service": "echo", "payload": "text",
                                             "zz_future": [1, {"a": b"b"}]})))
    r = c.wait_result("unk-1", 5)
    assert r is not None and r["status"] == "ok", r
    assert yw.as_bytes(r["payload"]) == b"text", r


def test_20MiB_frame_does_not_crash_broker(env):
    y, b, good = env
    bad = y.client(b)
    bad.send_frames(raw(C, yw.SUBMIT, body("huge", payload=b"\x02" * (20 * 1024 * 1024))))
    m = bad.recv(1.0)
    assert m is None or m.cmd == yw.ERROR, "unexpected reply to a 20 MiB frame: %r" % m
    assert_good_client_still_served(env, "20MiB frame")
    # and a newcomer is served too
    c = y.client(b)
    r = c.call("echo", b"newcomer", timeout=5)
    assert r is not None and r["status"] == "ok"


def test_garbage_flood_then_good_client(env):
    """Many random bad messages in a row, then the good client."""
    y, b, good = env
    bad = y.client(b)
    rnd = random.Random(1234)
    for i in range(300):
        n = rnd.randint(1, 4)
        frames = [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 6)))]
        if rnd.random() < 0.7:
            frames[0] = yw.header(C, rnd.choice([yw.SUBMIT, yw.CANCEL, yw.HEARTBEAT, 0x10, 0x55]))
        for _ in range(n):
            frames.append(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 40))))
        bad.send_frames(frames)
    bad.pump(1.0)
    assert_good_client_still_served(env, "garbage flood")


def test_broker_survived_everything(env):
    y, b, good = env
    st = b.stats()
    assert st["services"]["echo"]["workers"] == 1, st["services"]["echo"]
    assert b.proc.alive()
