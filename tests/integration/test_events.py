"""The event bus end to end (PROTOCOL.md 5.11, 8.7, 10): subscribers on the
events endpoint (a DEALER sending SUBSCRIBE), publishers on the tasks
endpoint (PUBLISH / PUBLISH_ACK), fan-out and prefix matching, sn numbering,
slow subscribers, the broker's own lifecycle events, --task-events,
--max-subscribers, the stats "events" object and subscriber liveness.

Everything is raw pyzmq + msgpack (yardwire): no C client library and no
`yard publish` / `yard subscribe` CLI. Every wait is bounded by a deadline.
"""

import os
import signal
import threading
import time

import msgpack
import zmq

import yardwire as yw

PUBLISH = 0x10
PUBLISH_ACK = 0x11
SUBSCRIBE = 0x12

# Canonical key order of a forwarded event (5.11): sn is added last.
EVENT_KEYS = ("type", "source", "ts_us", "payload", "trace_id", "meta", "sn")
MAX_EVENT_PAYLOAD = 1024 * 1024


def wall_us():
    return int(time.time() * 1_000_000)


# ---- helpers ---------------------------------------------------------------


class Sub:
    """A raw subscriber: a DEALER on the broker's events endpoint with its
    own routing id. PUBLISH bodies received are kept in .events (in arrival
    order), except the broker's retained system.startup, which a new
    subscriber that wants it gets first (PROTOCOL.md 8.7): it goes to
    .retained, and .sn_base is its sn (so the others start at sn_base + 1).
    Every other message is kept in .msgs."""

    def __init__(self, yard, broker, types=(), subscribe=True, rcvhwm=0,
                 rcvbuf=None, routing_id=None):
        self.routing_id = routing_id or yw.new_routing_id()
        self.endpoint = broker if isinstance(broker, str) else broker.events
        s = yard.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTING_ID, self.routing_id)
        s.setsockopt(zmq.SNDHWM, 0)
        s.setsockopt(zmq.RCVHWM, rcvhwm)
        s.setsockopt(zmq.SNDTIMEO, 5000)
        if rcvbuf is not None:
            s.setsockopt(zmq.RCVBUF, rcvbuf)
        s.connect(self.endpoint)
        self.sock = s
        self.poller = zmq.Poller()
        self.poller.register(s, zmq.POLLIN)
        self.events = []
        self.retained = []
        self.sn_base = 0
        self.publish_msgs = 0
        self.batch_sizes = []  # bodies per PUBLISH message received
        self.repeated_keys = []  # bodies with a key written twice
        self.msgs = []
        yard.peers.append(self)  # closed at teardown
        if subscribe:
            self.subscribe(types)

    @property
    def id_hex(self):
        return self.routing_id.hex()

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def send_frames(self, frames):
        self.sock.send_multipart([bytes(f) for f in frames])

    def send(self, cmd, bodies=(), role="C"):
        self.send_frames([yw.header(role, cmd)] + [yw.pack(b) for b in bodies])

    def recv(self, timeout):
        """One message (a yw.Msg) or None. PUBLISH bodies go to .events."""
        if not self.poller.poll(max(0, int(timeout * 1000))):
            return None
        frames = self.sock.recv_multipart()
        m = yw.Msg(frames)
        if m.cmd == PUBLISH and m.valid_header:
            self.publish_msgs += 1
            self.batch_sizes.append(len(m.bodies))
            for body in m.bodies:
                if (isinstance(body, dict) and body.get("type") == "system.startup"
                        and body.get("source") == "yard-broker"):
                    self.retained.append(body)
                    self.sn_base = body["sn"]
                else:
                    self.events.append(body)
            for f in frames[1:]:
                pairs = msgpack.unpackb(f, raw=False, object_pairs_hook=list)
                if len({k for k, _ in pairs}) != len(pairs):
                    self.repeated_keys.append(pairs)
        return m

    def wait_cmd(self, cmd, timeout):
        """Receives until a message with command cmd (or ERROR when cmd is
        not ERROR: a refusal ends the wait too); others go to .msgs."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            m = self.recv(left)
            if m is None:
                return None
            if m.cmd == cmd or m.cmd == yw.ERROR:
                return m
            if m.cmd != PUBLISH:
                self.msgs.append(m)

    def drain(self):
        while self.recv(0) is not None:
            pass

    def subscribe(self, types, timeout=5.0):
        """SUBSCRIBE and wait for its acknowledgement. A HEARTBEAT follows
        the SUBSCRIBE, so two HEARTBEATs back prove the ack was received
        (a periodic HEARTBEAT sent just before cannot be mistaken for it)."""
        self.drain()
        self.send(SUBSCRIBE, [{"types": list(types)}])
        self.send(yw.HEARTBEAT)
        beats = 0
        deadline = time.monotonic() + timeout
        while beats < 2:
            m = self.wait_cmd(yw.HEARTBEAT, deadline - time.monotonic())
            assert m is not None, "SUBSCRIBE %r not acknowledged within %.0fs" % (
                types, timeout)
            assert m.cmd == yw.HEARTBEAT, "SUBSCRIBE %r refused: %r" % (types, m)
            assert m.raw_header == yw.header("B", yw.HEARTBEAT) and m.bodies == [], m
            beats += 1

    def expect_error(self, timeout=5.0):
        m = self.wait_cmd(yw.ERROR, timeout)
        assert m is not None, "no answer within %.0fs (expected ERROR)" % timeout
        return m

    def wait_events(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.events) < n:
            left = deadline - time.monotonic()
            if left <= 0 or self.recv(left) is None:
                break
        return self.events

    def wait_event(self, pred, timeout, start=0):
        """The first event (from index start) with pred(event), or None."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.events):
                if pred(self.events[i]):
                    return self.events[i]
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            m = self.recv(left)
            if m is not None and m.cmd not in (PUBLISH, yw.HEARTBEAT):
                self.msgs.append(m)

    def quiet(self, seconds):
        """Receives for `seconds`; returns the events that arrived."""
        before = len(self.events)
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            m = self.recv(left)
            if m is not None and m.cmd not in (PUBLISH, yw.HEARTBEAT):
                self.msgs.append(m)
        return self.events[before:]


def publish(peer, bodies):
    peer.send(PUBLISH, bodies)


def wait_acks(peer, n, timeout):
    """Collects PUBLISH_ACK bodies (in arrival order) until n; also returns
    the PUBLISH_ACK messages and every other message seen."""
    acks, ack_msgs, others = [], [], []
    deadline = time.monotonic() + timeout
    while len(acks) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        m = peer.recv(left)
        if m is None:
            break
        if m.cmd == PUBLISH_ACK:
            ack_msgs.append(m)
            acks.extend(m.bodies)
        else:
            others.append(m)
    return acks, ack_msgs, others


def wait_error(peer, timeout=5.0):
    m, others = peer.recv_until(timeout, lambda m: m.cmd == yw.ERROR)
    assert m is not None, "no ERROR within %.0fs (got %r)" % (timeout, others)
    assert m.raw_header == yw.header("B", yw.ERROR), m
    assert len(m.bodies) == 1 and isinstance(m.bodies[0], dict), m
    return m.bodies[0]


def matches(types, etype):
    return not types or any(etype.startswith(p) for p in types)


def forwarded(ev):
    """What a subscriber must get for a published event, sn excluded."""
    return {k: ev[k] for k in EVENT_KEYS if k in ev and k != "sn"}


def sub_entry(st, sub):
    for e in st["events"]["subscriber_list"]:
        if e["id"] == sub.id_hex:
            return e
    return None


def check_sn(events, first=1):
    sns = [e["sn"] for e in events]
    assert sns == list(range(first, first + len(events))), sns


# ---- 1. subscription forms, forwarding --------------------------------------


def test_subscription_forms_and_forwarding(yard):
    b = yard.broker()
    forms = {
        "one": ["order."],
        "several": ["order.", "user.login"],
        "all_empty_list": [],
        "all_empty_prefix": [""],
        "prefix_is_bytes": ["pay", "nothing.here"],
    }
    subs = {name: Sub(yard, b, types) for name, types in forms.items()}
    given_ts = 1234567890123456
    events = [
        {"type": "order.created", "source": "shop-1",
         "payload": {"id": 1, "items": ["a", "b"], "ok": True},
         "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
         "meta": {"tenant": "acme", "k": ""}},
        {"type": "user.login", "payload": [1, "two", b"\x03", None, 2.5]},
        {"type": "user.logout", "ts_us": given_ts, "payload": 42},
        {"type": "payment.done", "payload": "plain str"},
        {"type": "order.shipped", "payload": b"\x00\xffbin", "seq": 7,
         "ack": True},
        {"type": "misc", "payload": None},
        {"type": "user.login.failed"},  # no payload at all
        {"type": "orders.x", "payload": -5},  # "order." does not match
        {"type": "payments:x_y-Z", "payload": 2 ** 64 - 1},
        {"type": "order.big", "source": "s" * 128, "trace_id": "t" * 128,
         "payload": {"nested": {"deeper": [1, {"x": b"y"}]}}},
        {"type": "order.zero_ts", "ts_us": 0, "payload": 0.5},  # 0: stamped
        {"type": "order.with_sn", "sn": 999},  # a publisher's sn is ignored
        {"type": "x" * 128, "payload": True},
    ]
    c = yard.client(b)
    t0 = wall_us()
    publish(c, events[:6])  # one batch
    for ev in events[6:]:  # and one by one
        publish(c, [ev])
    acks, _, _ = wait_acks(c, 1, 5)
    assert acks == [{"seq": 7, "status": "ok"}], acks
    t1 = wall_us()

    for name, types in forms.items():
        s = subs[name]
        want = [forwarded(e) for e in events if matches(types, e["type"])]
        got = s.wait_events(len(want), 5)
        extra = s.quiet(0.3)
        assert not extra, "%s got events it did not subscribe to: %r" % (name, extra)
        assert len(got) == len(want), (name, [g["type"] for g in got],
                                       [w["type"] for w in want])
        check_sn(got, s.sn_base + 1)
        # The retained system.startup came first, to those that want it.
        assert len(s.retained) == (1 if matches(types, "system.startup") else 0), \
            (name, s.retained)
        for g, w in zip(got, want):
            assert list(g) == [k for k in EVENT_KEYS if k in g], (
                "%s: keys not in canonical order (sn last): %r" % (name, list(g)))
            assert "seq" not in g and "ack" not in g, g
            w = dict(w)
            if not w.get("ts_us"):
                w.pop("ts_us", None)
            ts = g.pop("ts_us", None)
            g.pop("sn")
            if "ts_us" in w:
                assert ts == w.pop("ts_us"), (name, g)
            else:
                assert ts is not None and t0 - 2_000_000 <= ts <= t1 + 2_000_000, (
                    "%s: ts_us %r not stamped with the wall clock [%d, %d]" % (
                        name, ts, t0, t1))
            assert g == w, (name, g, w)
        assert not s.repeated_keys, (name, s.repeated_keys)
        assert all(1 <= n <= 128 for n in s.batch_sizes), s.batch_sizes
    # Payloads keep their msgpack types (bin stays bin, str stays str).
    allsub = subs["all_empty_list"].events
    by_type = {e["type"]: e for e in allsub}
    assert by_type["order.shipped"]["payload"] == b"\x00\xffbin"
    assert isinstance(by_type["payment.done"]["payload"], str)
    assert "payload" in by_type["misc"] and by_type["misc"]["payload"] is None
    assert "payload" not in by_type["user.login.failed"]

    st = b.stats()
    entries = {n: sub_entry(st, s) for n, s in subs.items()}
    assert entries["one"]["types"] == ["order."] and entries["one"]["all"] is False
    assert entries["several"]["types"] == ["order.", "user.login"]
    assert entries["all_empty_list"]["all"] is True
    assert entries["all_empty_prefix"]["all"] is True
    assert st["events"]["subscribers"] == len(subs)

    # A second SUBSCRIBE replaces the set; sn goes on from where it was.
    one = subs["one"]
    n_before = len(one.events)
    one.subscribe(["user."])
    publish(c, [{"type": "order.late"}, {"type": "user.late"}])
    got = subs["all_empty_list"].wait_events(len(events) + 2, 5)
    assert [e["type"] for e in got[-2:]] == ["order.late", "user.late"]
    one.wait_events(n_before + 1, 5)
    one.quiet(0.3)
    new = one.events[n_before:]
    assert [e["type"] for e in new] == ["user.late"], new
    assert new[0]["sn"] == one.sn_base + n_before + 1, new
    st = b.stats()
    assert sub_entry(st, one)["types"] == ["user."]
    assert st["events"]["subscribers"] == len(subs), "re-SUBSCRIBE added a subscriber"


# ---- 2. publish-confirmed ---------------------------------------------------


def test_publish_confirmed(yard):
    b = yard.broker()
    s = Sub(yard, b, ["conf."])
    c = yard.client(b)

    # One event, acknowledged.
    publish(c, [{"type": "conf.one", "seq": 1, "ack": True}])
    acks, msgs, _ = wait_acks(c, 1, 5)
    assert acks == [{"seq": 1, "status": "ok"}], acks
    assert msgs[0].raw_header == yw.header("B", PUBLISH_ACK), msgs[0]
    assert list(msgs[0].bodies[0]) == ["seq", "status"], "canonical: seq, status"

    # A batch: acks for exactly the events that asked, in order; an invalid
    # event that asked gets {status: invalid, error}.
    batch = [
        {"type": "conf.a", "seq": 10, "ack": True},
        {"type": "conf.b", "seq": 11, "ack": True, "payload": [1]},
        {"type": "conf.c"},  # no ack asked
        {"type": "conf bad", "seq": 12, "ack": True},  # invalid
        {"type": "conf.d", "seq": 13, "ack": True},
        {"type": "conf.e", "seq": 2 ** 64 - 1, "ack": True},
        {"type": "conf.f", "seq": 14},  # seq without ack: no ack
    ]
    publish(c, batch)
    acks, msgs, others = wait_acks(c, 5, 5)
    assert [(a["seq"], a["status"]) for a in acks] == [
        (10, "ok"), (11, "ok"), (12, "invalid"), (13, "ok"), (2 ** 64 - 1, "ok")
    ], acks
    assert len(msgs) == 1, "acks of one PUBLISH should share one PUBLISH_ACK: %r" % msgs
    bad = acks[2]
    assert list(bad) == ["seq", "status", "error"], bad
    assert bad["error"].startswith("bad_field"), bad
    assert "error" not in acks[0]
    assert not [m for m in others if m.cmd == yw.ERROR], \
        "an invalid event with ack must be answered in PUBLISH_ACK, not ERROR: %r" % others
    assert c.recv(0.3) is None, "no extra answer (acks only for ack:true)"

    # The subscriber got the valid ones, in order, without seq/ack.
    got = s.wait_events(7, 5)
    s.quiet(0.2)
    assert [e["type"] for e in s.events] == [
        "conf.one", "conf.a", "conf.b", "conf.c", "conf.d", "conf.e", "conf.f"]
    assert all("seq" not in e and "ack" not in e for e in got)

    # An invalid event without ack: ERROR naming the body.
    publish(c, [{"type": "conf.ok"}, {"type": ""}])
    err = wait_error(c)
    assert err["code"] == "bad_field", err
    assert "PUBLISH body 1" in err["message"], err

    # ack:true without seq (or seq 0) is refused, with ERROR (no seq to ack).
    for body in ({"type": "conf.noseq", "ack": True},
                 {"type": "conf.seq0", "ack": True, "seq": 0}):
        publish(c, [body])
        err = wait_error(c)
        assert err["code"] == "bad_field", (body, err)
    assert c.recv(0.2) is None

    # A worker may publish too (role W), with acks.
    w = yard.raw_worker(b, "pubw")
    b.wait_workers("pubw", 1)
    w.send(PUBLISH, [{"type": "conf.from_worker", "seq": 5, "ack": True}])
    acks, _, _ = wait_acks(w, 1, 5)
    assert acks == [{"seq": 5, "status": "ok"}], acks
    assert s.wait_event(lambda e: e["type"] == "conf.from_worker", 5)

    # The broker keeps serving: publish, ack, stats, tasks.
    yard.worker(b, "echo", "echo")
    publish(c, [{"type": "conf.after", "seq": 99, "ack": True}])
    acks, _, _ = wait_acks(c, 1, 5)
    assert acks == [{"seq": 99, "status": "ok"}], acks
    r = c.call("echo", b"still", timeout=10)
    assert r is not None and r["status"] == "ok" and r["payload"] == b"still", r
    s.wait_event(lambda e: e["type"] == "conf.after", 5)
    types = [e["type"] for e in s.events]
    assert "conf.ok" in types and "conf.noseq" not in types and "conf.seq0" not in types
    check_sn(s.events, s.sn_base + 1)
    st = b.stats()["events"]
    assert st["invalid"] == 4, st  # conf bad, "", noseq, seq0


# ---- 3. malformed input -----------------------------------------------------


def _deep(n):
    v = 1
    for _ in range(n):
        v = [v]
    return v


def _raw_map(pairs):
    """A msgpack map from (key, value) pairs, repeats allowed."""
    out = bytearray([0x80 + len(pairs)])
    for k, v in pairs:
        out += msgpack.packb(k, use_bin_type=True) + msgpack.packb(v, use_bin_type=True)
    return bytes(out)


# name -> (PUBLISH bodies: dicts, or raw bytes sent as they are; ERROR code)
PUBLISH_CASES = {
    "type_empty": ([{"type": ""}], "bad_field"),
    "type_with_space": ([{"type": "good. bad"}], "bad_field"),
    "type_with_slash": ([{"type": "good/x"}], "bad_field"),
    "type_missing": ([{"source": "x"}], "bad_field"),
    "type_not_str": ([{"type": 12}], "bad_field"),
    "type_bin": ([{"type": b"good.bin"}], "bad_field"),
    "payload_over_1MiB": ([{"type": "good.big",
                            "payload": b"x" * (MAX_EVENT_PAYLOAD - 4)}], "too_large"),
    "payload_too_deep": ([{"type": "good.deep", "payload": _deep(10)}], "too_large"),
    "payload_bad_msgpack": ([b"\x82\xa4type\xa6good.x\xa7payload\xc1"], "malformed"),
    "payload_truncated": ([b"\x82\xa4type\xa6good.x\xa7payload\x92\x01"], "malformed"),
    "meta_list": ([{"type": "good.m", "meta": ["a", "b"]}], "bad_field"),
    "meta_int_value": ([{"type": "good.m", "meta": {"k": 1}}], "bad_field"),
    "meta_bin_value": ([{"type": "good.m", "meta": {"k": b"v"}}], "bad_field"),
    "meta_empty_key": ([{"type": "good.m", "meta": {"": "v"}}], "bad_field"),
    "meta_33_entries": ([{"type": "good.m",
                          "meta": {"k%d" % i: "v" for i in range(33)}}], "too_large"),
    "meta_value_1025": ([{"type": "good.m", "meta": {"k": "v" * 1025}}], "too_large"),
    "body_array": ([msgpack.packb(["type", "good.x"])], "malformed"),
    "body_str": ([msgpack.packb("good.x")], "malformed"),
    "body_trailing_bytes": ([msgpack.packb({"type": "good.x"}) + b"\x00"], "malformed"),
    "body_repeated_type": ([_raw_map([("type", "good.x"), ("type", "good.y")])],
                           "malformed"),
    "ts_us_negative": ([{"type": "good.t", "ts_us": -1}], "bad_field"),
    "ts_us_str": ([{"type": "good.t", "ts_us": "now"}], "bad_field"),
    "seq_negative": ([{"type": "good.s", "seq": -3}], "bad_field"),
    "seq_str": ([{"type": "good.s", "seq": "1", "ack": True}], "bad_field"),
    "sn_negative": ([{"type": "good.s", "sn": -1}], "bad_field"),  # D14
    "ack_not_bool": ([{"type": "good.s", "seq": 1, "ack": 1}], "bad_field"),
    "source_not_str": ([{"type": "good.s", "source": 5}], "bad_field"),
    "trace_id_nil": ([{"type": "good.s", "trace_id": None}], "bad_field"),
    "zero_bodies": ([], "bad_frames"),
    "257_bodies": ([{"type": "good.n"}] * 257, "bad_frames"),
}


def test_malformed_publish_is_refused(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    good = Sub(yard, b, ["good."])
    c = yard.client(b)
    wrong = []
    body_refusals = 0
    for name, (bodies, code) in PUBLISH_CASES.items():
        publish(c, bodies)
        m, others = c.recv_until(5, lambda m: m.cmd == yw.ERROR)
        if m is None:
            wrong.append("%s: no ERROR (got %r)" % (name, others))
            continue
        err = m.bodies[0]
        if err.get("code") != code:
            wrong.append("%s: ERROR %r, expected code %r" % (name, err, code))
        if not err.get("message"):
            wrong.append("%s: ERROR without message: %r" % (name, err))
        if code not in ("bad_frames",):
            body_refusals += 1
            if "PUBLISH body 0" not in err.get("message", ""):
                wrong.append("%s: message does not name the body: %r" % (name, err))
        if c.recv(0) is not None:
            wrong.append("%s: more than one answer" % name)
    # The boundary: a payload of exactly 1 MiB encoded is accepted.
    exact = {"type": "good.exact", "payload": b"x" * (MAX_EVENT_PAYLOAD - 5),
             "seq": 1, "ack": True}
    assert len(msgpack.packb(exact["payload"], use_bin_type=True)) == MAX_EVENT_PAYLOAD
    publish(c, [exact])
    acks, _, others = wait_acks(c, 1, 5)
    if acks != [{"seq": 1, "status": "ok"}]:
        wrong.append("payload of exactly 1 MiB: %r %r" % (acks, others))
    assert not wrong, "\n".join(wrong)

    # Nothing invalid reached the subscriber; good events and tasks still flow.
    publish(c, [{"type": "good.after"}])
    ev = good.wait_event(lambda e: e["type"] == "good.after", 5)
    assert ev is not None
    assert [e["type"] for e in good.events] == ["good.exact", "good.after"], \
        [e["type"] for e in good.events]
    check_sn(good.events, good.sn_base + 1)
    assert len(good.events[0]["payload"]) == MAX_EVENT_PAYLOAD - 5
    r = c.call("echo", b"alive", timeout=10)
    assert r is not None and r["status"] == "ok", r
    st = b.stats()
    assert st["events"]["invalid"] == body_refusals, st["events"]


def test_event_type_over_128_bytes_is_refused(yard):
    """`type` is 1..128 bytes like a service name; a length outside a str
    field's range is `bad_field` (PROTOCOL.md D12, section 7)."""
    b = yard.broker()
    c = yard.client(b)
    publish(c, [{"type": "t" * 128, "seq": 1, "ack": True}])
    acks, _, _ = wait_acks(c, 1, 5)
    assert acks == [{"seq": 1, "status": "ok"}], "a 128-byte type is valid: %r" % acks
    publish(c, [{"type": "t" * 129}])
    err = wait_error(c)
    assert err["code"] == "bad_field", err
    assert "PUBLISH body 0" in err["message"], err


EVENTS_ENDPOINT_CASES = {
    # name -> (frames, expected code)
    "types_not_array": ([yw.header("C", SUBSCRIBE), yw.pack({"types": "good."})],
                        "bad_field"),
    "types_map": ([yw.header("C", SUBSCRIBE), yw.pack({"types": {"a": "b"}})],
                  "bad_field"),
    "types_missing": ([yw.header("C", SUBSCRIBE), yw.pack({"type": ["good."]})],
                      "bad_field"),
    "types_33": ([yw.header("C", SUBSCRIBE),
                  yw.pack({"types": ["p%d" % i for i in range(33)]})], "too_large"),
    "prefix_bad_chars": ([yw.header("C", SUBSCRIBE), yw.pack({"types": ["good", "a b"]})],
                         "bad_field"),
    "prefix_slash": ([yw.header("C", SUBSCRIBE), yw.pack({"types": ["a/b"]})],
                     "bad_field"),
    "prefix_129": ([yw.header("C", SUBSCRIBE), yw.pack({"types": ["p" * 129]})],
                   "too_large"),
    "prefix_not_str": ([yw.header("C", SUBSCRIBE), yw.pack({"types": ["ok", 3]})],
                       "bad_field"),
    "prefix_bin": ([yw.header("C", SUBSCRIBE), yw.pack({"types": [b"good."]})],
                   "bad_field"),
    "subscribe_body_not_map": ([yw.header("C", SUBSCRIBE), msgpack.packb(["good."])],
                               "malformed"),
    "subscribe_no_body": ([yw.header("C", SUBSCRIBE)], "bad_frames"),
    "subscribe_two_bodies": ([yw.header("C", SUBSCRIBE), yw.pack({"types": []}),
                              yw.pack({"types": []})], "bad_frames"),
    "heartbeat_with_body": ([yw.header("C", yw.HEARTBEAT), yw.pack({})], "bad_frames"),
    "submit_on_events": ([yw.header("C", yw.SUBMIT),
                          yw.pack({"id": "x", "service": "echo"})], "unknown_command"),
    "publish_on_events": ([yw.header("C", PUBLISH), yw.pack({"type": "good.x"})],
                          "unknown_command"),
    "cancel_on_events": ([yw.header("C", yw.CANCEL), yw.pack({"id": "x"})],
                         "unknown_command"),
    "reserved_0x20": ([yw.header("C", 0x20)], "unknown_command"),
    "unassigned_0x13": ([yw.header("C", 0x13)], "unknown_command"),
    "worker_ready": ([yw.header("W", yw.READY),
                      yw.pack({"service": "echo", "capacity": 1})], "unknown_command"),
    "worker_heartbeat": ([yw.header("W", yw.HEARTBEAT)], "unknown_command"),
    "worker_subscribe": ([yw.header("W", SUBSCRIBE), yw.pack({"types": []})],
                         "unknown_command"),
    "broker_role": ([yw.header("B", SUBSCRIBE), yw.pack({"types": []})],
                    "unknown_command"),
    "bad_role": ([yw.header("X", SUBSCRIBE), yw.pack({"types": []})], "malformed"),
    "short_header": ([b"YC\x01", yw.pack({"types": []})], "malformed"),
    "bad_magic": ([b"ZC\x01\x12", yw.pack({"types": []})], "malformed"),
    "bad_version": ([yw.header("C", SUBSCRIBE, version=2), yw.pack({"types": []})],
                    "bad_version"),
}


def test_malformed_on_events_endpoint_is_refused(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    good = Sub(yard, b, ["good."])
    wrong = []
    bad_subs = []
    for name, (frames, code) in EVENTS_ENDPOINT_CASES.items():
        s = Sub(yard, b, subscribe=False)
        bad_subs.append(s)
        s.send_frames(frames)
        m = s.wait_cmd(yw.ERROR, 5)
        if m is None or m.cmd != yw.ERROR:
            wrong.append("%s: no ERROR (got %r)" % (name, m))
            continue
        if m.raw_header != yw.header("B", yw.ERROR) or len(m.bodies) != 1:
            wrong.append("%s: bad ERROR message %r" % (name, m))
            continue
        err = m.bodies[0]
        if err.get("code") != code or not err.get("message"):
            wrong.append("%s: ERROR %r, expected code %r" % (name, err, code))
        if s.recv(0.05) is not None:
            wrong.append("%s: more than one answer" % name)

    # SUBSCRIBE on the tasks endpoint is not for the tasks ROUTER.
    c = yard.client(b)
    c.send(SUBSCRIBE, [{"types": []}])
    err = wait_error(c)
    if err.get("code") != "unknown_command":
        wrong.append("SUBSCRIBE on the tasks endpoint: %r" % err)
    assert not wrong, "\n".join(wrong)

    # None of the refused ones became a subscriber; the good one still works,
    # and so do tasks.
    st = b.stats()
    assert st["events"]["subscribers"] == 1, st["events"]
    assert [e["id"] for e in st["events"]["subscriber_list"]] == [good.id_hex]
    publish(c, [{"type": "good.after"}])
    assert good.wait_event(lambda e: e["type"] == "good.after", 5) is not None
    for s in bad_subs:
        assert not s.quiet(0.01), "a refused SUBSCRIBE got events"
    r = c.call("echo", b"alive", timeout=10)
    assert r is not None and r["status"] == "ok", r
    # A refused SUBSCRIBE leaves nothing behind: its HEARTBEAT is unknown.
    s = bad_subs[0]
    s.send(yw.HEARTBEAT)
    m = s.wait_cmd(yw.DISCONNECT, 5)
    assert m is not None and m.cmd == yw.DISCONNECT, m


# ---- 4. slow subscriber -----------------------------------------------------


class _Prober(threading.Thread):
    """Asks stats and runs an echo task in a loop, recording the slowest
    answer: the broker must stay responsive while events flood."""

    def __init__(self, ctx, broker):
        super().__init__(daemon=True)
        self.ctx = ctx
        self.endpoint = broker.endpoint
        self.stop = threading.Event()
        self.worst = 0.0
        self.rounds = 0
        self.failures = []

    def run(self):
        c = yw.Client(self.ctx, self.endpoint)
        try:
            while not self.stop.is_set():
                for service, payload in (("yard.admin", b"stats"), ("echo", b"e")):
                    t = time.monotonic()
                    r = c.call(service, payload, timeout=5)
                    dt = time.monotonic() - t
                    self.worst = max(self.worst, dt)
                    if r is None or r.get("status") != "ok":
                        self.failures.append((service, r))
                self.rounds += 1
                time.sleep(0.02)
        finally:
            c.close()


def test_slow_subscriber_drops_are_counted_and_bounded(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    fast = Sub(yard, b, ["bulk."])
    slow = Sub(yard, b, ["bulk."], rcvhwm=10, rcvbuf=4096)
    rss0 = b.stats()["memory"]["rss_bytes"]
    c = yard.client(b)

    N, BATCH, WINDOW = 100_000, 256, 1024
    body = yw.pack({"type": "bulk.x", "source": "pytest",
                    "payload": b"p" * 200})
    hdr = yw.header("C", PUBLISH)
    prober = _Prober(yard.ctx, b)
    prober.start()
    sent = got = 0
    next_sn = 1
    gaps = []
    deadline = time.monotonic() + 40
    try:
        def read_fast(timeout):
            nonlocal got, next_sn
            if not fast.poller.poll(int(timeout * 1000)):
                return False
            frames = fast.sock.recv_multipart()
            if frames[0] == yw.header("B", PUBLISH):
                assert 1 <= len(frames) - 1 <= 128, "PUBLISH of %d events" % (
                    len(frames) - 1)
                for f in frames[1:]:
                    sn = msgpack.unpackb(f)["sn"]
                    if sn != next_sn:
                        gaps.append((next_sn, sn))
                    next_sn = sn + 1
                got += len(frames) - 1
            return True

        while sent < N:
            n = min(BATCH, N - sent)
            # Fire and forget: no ack asked.
            c.sock.send_multipart([hdr] + [body] * n)
            sent += n
            # The reader reads as fast as it can; the publisher never gets
            # more than WINDOW events ahead of it (fewer than the broker's
            # 32-message pipe), so none may be dropped for the reader.
            while read_fast(0):
                pass
            while sent - got > WINDOW:
                assert time.monotonic() < deadline, "reader stalled at %d/%d" % (got, sent)
                read_fast(0.5)
        while got < N and time.monotonic() < deadline:
            read_fast(0.5)
    finally:
        prober.stop.set()
        prober.join(10)
    assert not gaps, "the reading subscriber lost events: gaps %r" % gaps[:10]
    assert got == N, "reader got %d of %d events" % (got, N)
    assert not prober.failures, prober.failures[:3]
    assert prober.rounds >= 1
    assert prober.worst < 1.0, (
        "stats/echo took %.3fs while events flooded" % prober.worst)

    t = time.monotonic()
    st = b.stats()
    assert time.monotonic() - t < 1.0
    ev = st["events"]
    fe, se = sub_entry(st, fast), sub_entry(st, slow)
    assert fe["sn"] == N and fe["delivered"] == N and fe["dropped"] == 0, fe
    assert se["sn"] == N, se
    assert se["dropped"] > 0, "the never-reading subscriber had nothing dropped: %r" % se
    assert se["delivered"] + se["dropped"] == N, se
    assert ev["dropped"] == se["dropped"], ev
    assert ev["delivered"] == fe["delivered"] + se["delivered"], ev
    assert ev["delivered"] + ev["dropped"] == 2 * N, ev
    bt = ev["types"]["bulk.x"]
    assert bt["published"] == N, bt
    assert bt["delivered"] == ev["delivered"] and bt["dropped"] == ev["dropped"], bt
    rss1 = st["memory"]["rss_bytes"]
    assert rss1 - rss0 < 200 * 1024 * 1024, "broker RSS grew %d -> %d" % (rss0, rss1)
    r = c.call("echo", b"after", timeout=5)
    assert r is not None and r["status"] == "ok", r

    # Now the slow one reads: exactly what was handed to ZeroMQ for it
    # arrives, in order, and the missing sn are exactly its drops.
    sns = []
    want = se["delivered"]
    deadline = time.monotonic() + 20
    while len(sns) < want and time.monotonic() < deadline:
        if not slow.poller.poll(500):
            continue
        frames = slow.sock.recv_multipart()
        if frames[0] == yw.header("B", PUBLISH):
            sns.extend(msgpack.unpackb(f)["sn"] for f in frames[1:])
    assert len(sns) == want, "slow subscriber got %d of the %d delivered" % (len(sns), want)
    assert sns == sorted(set(sns)), "sn not strictly increasing"
    assert sns[0] == 1 and sns[-1] <= N
    missing = N - len(sns)
    assert missing == se["dropped"], (missing, se)
    # One more event, now that it reads: its sn shows the whole gap, and
    # the gaps add up to exactly the drops counted for it.
    publish(c, [{"type": "bulk.end"}])
    deadline = time.monotonic() + 5
    while sns[-1] != N + 1 and time.monotonic() < deadline:
        if slow.poller.poll(200):
            frames = slow.sock.recv_multipart()
            if frames[0] == yw.header("B", PUBLISH):
                sns.extend(msgpack.unpackb(f)["sn"] for f in frames[1:])
    assert sns[-1] == N + 1, sns[-3:]
    gap = sum(b2 - a - 1 for a, b2 in zip(sns, sns[1:]))
    assert gap == se["dropped"] > 0, (gap, se)
    st = b.stats()
    assert sub_entry(st, slow)["dropped"] == se["dropped"], "no new drops once reading"


# ---- 5. lifecycle events ----------------------------------------------------


def test_lifecycle_events(yard):
    b = yard.broker("--breaker", "brk.fail_threshold=2", "--grace", "3000")
    s = Sub(yard, b, [])
    echo = yard.worker(b, "echo", "echo", capacity=2, extra=["--name", "ev-echo"])
    yard.worker(b, "failsvc", "fail", extra=["--name", "ev-fail"])
    yard.worker(b, "brk", "fail")
    sleeper = yard.worker(b, "slowsvc", "sleep", capacity=1,
                          extra=["--name", "ev-sleep"])
    c = yard.client(b)

    # A busy worker killed -9: lost after the heartbeat liveness (3 s).
    c.submit1("slowsvc", b"20000", id="t-lost", timeout_ms=30000)
    b.wait_stats(lambda st: st["services"]["slowsvc"]["in_flight"] == 1, 10,
                 "slowsvc task in flight")
    os.kill(sleeper.pid, signal.SIGKILL)
    assert sleeper.wait(5) is not None

    # Meanwhile: ok, failed after retries, timeout, breaker.
    r = c.call("echo", b"hi", id="t-ok", priority=5, timeout=10)
    assert r["status"] == "ok", r
    r = c.call("failsvc", b"x", id="t-fail", retries=2, backoff_ms=10,
               timeout_ms=10000, timeout=10)
    assert r["status"] == "error" and r["attempts"] == 3, r
    r = c.call("ghost", b"x", id="t-timeout", timeout_ms=200, timeout=10)
    assert r["status"] == "timeout", r
    for i in (1, 2):
        r = c.call("brk", b"x", id="t-brk-%d" % i, timeout=10)
        assert r["status"] == "error", r

    opened = s.wait_event(lambda e: e["type"] == "breaker.opened", 5)
    assert opened is not None, "no breaker.opened"
    lost = s.wait_event(lambda e: e["type"] == "worker.lost", 8)
    assert lost is not None, "no worker.lost after kill -9"
    c.cancel(["t-lost"])
    r = c.wait_result("t-lost", 5)
    assert r is not None and r["status"] == "cancelled", r
    assert s.wait_event(lambda e: e["type"] == "task.cancelled", 5) is not None

    echo.signal(signal.SIGTERM)
    assert echo.wait(5) is not None, "echo worker did not stop on SIGTERM"
    left = s.wait_event(lambda e: e["type"] == "worker.left", 5)
    assert left is not None, "no worker.left after SIGTERM"

    b.proc.signal(signal.SIGTERM)
    down = s.wait_event(lambda e: e["type"] == "system.shutdown", 8)
    assert down is not None, "no system.shutdown before the broker exited"
    assert b.proc.wait(10) == 0

    evs = s.events
    check_sn(evs, s.sn_base + 1)
    # A subscriber of everything got the retained system.startup first.
    assert len(s.retained) == 1 and s.retained[0]["sn"] == 1, s.retained
    up = s.retained[0]["payload"]
    assert up["pid"] == b.proc.pid and up["endpoint"] == b.endpoint, up
    for e in evs:
        assert e["source"] == "yard-broker", e
        assert isinstance(e["payload"], dict), e
        assert abs(e["ts_us"] - wall_us()) < 120_000_000, e

    def one(etype, **match):
        found = [e for e in evs if e["type"] == etype
                 and all(e["payload"].get(k) == v for k, v in match.items())]
        assert len(found) == 1, "%s %r: %d found in %r" % (
            etype, match, len(found), [(x["type"], x["payload"]) for x in evs])
        return found[0]["payload"]

    def keys(p, *want):
        assert set(p) == set(want), (p, want)

    p = one("worker.joined", service="echo")
    keys(p, "service", "name", "pid", "capacity")
    assert p == {"service": "echo", "name": "ev-echo", "pid": echo.pid, "capacity": 2}, p
    p = one("worker.joined", service="slowsvc")
    assert p["pid"] == sleeper.pid and p["name"] == "ev-sleep" and p["capacity"] == 1, p

    p = one("task.submitted", id="t-ok")
    keys(p, "id", "service", "priority")
    assert p["service"] == "echo" and p["priority"] == 5, p
    p = one("task.completed", id="t-ok")
    keys(p, "id", "service", "attempts", "total_us", "run_us")
    assert p["service"] == "echo" and p["attempts"] == 1 and p["total_us"] > 0, p
    assert 0 <= p["run_us"] <= p["total_us"], p

    retried = [e["payload"] for e in evs
               if e["type"] == "task.retried" and e["payload"]["id"] == "t-fail"]
    assert [x["attempt"] for x in retried] == [2, 3], retried
    for x in retried:
        keys(x, "id", "service", "attempt", "delay_ms")
        assert x["service"] == "failsvc" and 0 <= x["delay_ms"] <= 100, x
    p = one("task.failed", id="t-fail")
    keys(p, "id", "service", "attempts", "error")
    assert p == {"id": "t-fail", "service": "failsvc", "attempts": 3,
                 "error": "fail handler: always fails"}, p

    p = one("task.timeout", id="t-timeout")
    keys(p, "id", "service", "attempts")
    assert p["service"] == "ghost" and p["attempts"] == 0, p

    p = one("breaker.opened", service="brk")
    keys(p, "service", "state", "consecutive_failures", "trips", "retry_in_ms",
         "success_rate")
    assert p["state"] == "open" and p["consecutive_failures"] == 2 and p["trips"] == 1, p
    assert p["retry_in_ms"] > 0 and 0.0 <= p["success_rate"] <= 1.0, p

    p = one("worker.lost", service="slowsvc")
    keys(p, "service", "name", "pid", "reason", "requeued")
    assert p["pid"] == sleeper.pid and p["name"] == "ev-sleep", p
    assert p["requeued"] == 1 and isinstance(p["reason"], str) and p["reason"], p

    p = one("task.cancelled", id="t-lost")
    keys(p, "id", "service")

    p = one("worker.left", service="echo")
    keys(p, "service", "name", "pid", "requeued")
    assert p == {"service": "echo", "name": "ev-echo", "pid": echo.pid, "requeued": 0}, p

    p = one("system.shutdown")
    keys(p, "pid", "answered_shutdown", "uptime_ms")
    assert p["pid"] == b.proc.pid and p["answered_shutdown"] == 0 and p["uptime_ms"] > 0, p
    assert evs[-1]["type"] == "system.shutdown", "nothing after system.shutdown"

    # Per-task order: submitted before its outcome.
    order = [(e["type"], e["payload"].get("id")) for e in evs]
    for tid, outcome in (("t-ok", "task.completed"), ("t-fail", "task.failed"),
                         ("t-timeout", "task.timeout"), ("t-lost", "task.cancelled")):
        assert order.index(("task.submitted", tid)) < order.index((outcome, tid)), tid
    assert order.index(("worker.lost", None)) < order.index(("task.cancelled", "t-lost"))


# ---- 6. task events switch --------------------------------------------------


def _task_types(st):
    return {k: v for k, v in st["events"]["types"].items() if k.startswith("task.")}


def test_task_events_off(yard):
    b = yard.broker("--task-events", "off")
    tasks = Sub(yard, b, ["task."])
    workers = Sub(yard, b, ["worker."])
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    for i in range(3):
        r = c.call("echo", b"x%d" % i, timeout=10)
        assert r is not None and r["status"] == "ok", r
    r = c.call("ghost", b"x", timeout_ms=100, timeout=10)
    assert r["status"] == "timeout", r
    assert workers.wait_event(lambda e: e["type"] == "worker.joined", 5) is not None
    publish(c, [{"type": "task.custom"}])  # a publisher's own task.* still flows
    got = tasks.wait_event(lambda e: True, 5)
    tasks.quiet(0.3)
    assert [e["type"] for e in tasks.events] == ["task.custom"], tasks.events
    st = b.stats()
    assert st["events"]["task_events"] is False
    assert set(_task_types(st)) == {"task.custom"}, _task_types(st)
    assert got["sn"] == 1


def test_task_events_cost_nothing_without_listeners(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    workers = Sub(yard, b, ["worker.", "system.", "tasks"])  # none can match task.*
    for i in range(5):
        r = c.call("echo", b"x%d" % i, timeout=10)
        assert r["status"] == "ok", r
    st = b.stats()
    assert st["events"]["task_events"] is True
    assert _task_types(st) == {}, "task.* built with nobody listening: %r" % _task_types(st)
    assert st["events"]["types"]["worker.joined"]["published"] == 1

    # Once someone can match them, they are built (and counted).
    listener = Sub(yard, b, ["task.completed"])
    r = c.call("echo", b"y", id="t-seen", timeout=10)
    assert r["status"] == "ok", r
    ev = listener.wait_event(lambda e: e["type"] == "task.completed", 5)
    assert ev is not None and ev["payload"]["id"] == "t-seen", ev
    listener.quiet(0.2)
    assert [e["type"] for e in listener.events] == ["task.completed"]
    st = b.stats()
    tt = _task_types(st)
    assert tt["task.completed"] == {"published": 1, "delivered": 1, "dropped": 0}, tt
    assert not [e for e in workers.quiet(0.1) if e["type"].startswith("task.")]

    # And they stop again when that subscriber leaves.
    listener.send(yw.DISCONNECT)
    b.wait_stats(lambda st: st["events"]["subscribers"] == 1, 5, "listener gone")
    r = c.call("echo", b"z", timeout=10)
    assert r["status"] == "ok", r
    assert _task_types(b.stats())["task.completed"]["published"] == 1


# ---- 7. max subscribers -----------------------------------------------------


def test_max_subscribers(yard):
    b = yard.broker("--max-subscribers", "2")
    s1 = Sub(yard, b, ["a."])
    s2 = Sub(yard, b, ["b."])
    s3 = Sub(yard, b, subscribe=False)
    s3.send(SUBSCRIBE, [{"types": ["c."]}])
    m = s3.expect_error()
    assert m.cmd == yw.ERROR and m.bodies[0]["code"] == "limit", m
    st = b.stats()["events"]
    assert (st["subscribers"], st["max_subscribers"], st["refused"]) == (2, 2, 1), st

    # A subscriber already in may change its set at the limit.
    s1.subscribe(["a.", "x."])
    st = b.stats()["events"]
    assert (st["subscribers"], st["refused"]) == (2, 1), st

    # One leaves (DISCONNECT): room for the refused one.
    s1.send(yw.DISCONNECT)
    b.wait_stats(lambda st: st["events"]["subscribers"] == 1, 5, "s1 forgotten")
    s3.subscribe(["c."])
    st = b.stats()["events"]
    assert (st["subscribers"], st["refused"]) == (2, 1), st
    assert {e["id"] for e in st["subscriber_list"]} == {s2.id_hex, s3.id_hex}

    # A fourth is refused again; the ones in get their events.
    s4 = Sub(yard, b, subscribe=False)
    s4.send(SUBSCRIBE, [{"types": []}])
    m = s4.expect_error()
    assert m.bodies[0]["code"] == "limit", m
    c = yard.client(b)
    publish(c, [{"type": "a.1"}, {"type": "b.1"}, {"type": "c.1"}])
    assert s2.wait_event(lambda e: e["type"] == "b.1", 5)
    assert s3.wait_event(lambda e: e["type"] == "c.1", 5)
    assert not [e for e in s1.quiet(0.2) if e["type"] == "a.1"], "s1 left"
    assert not s4.quiet(0.01)
    assert b.stats()["events"]["refused"] == 2


# ---- 8. metrics -------------------------------------------------------------


def test_event_metrics(yard):
    b = yard.broker()
    st0 = b.stats()["events"]
    assert st0["types"]["system.startup"] == {"published": 1, "delivered": 0,
                                             "dropped": 0}, st0
    # Retained: a new subscriber that wants it gets it (counted delivered).
    first = Sub(yard, b, ["system."])
    deadline = time.monotonic() + 5
    while not first.retained and time.monotonic() < deadline:
        first.recv(0.1)
    assert [e["type"] for e in first.retained] == ["system.startup"], first.retained
    assert first.retained[0]["sn"] == 1
    first.send(yw.DISCONNECT)
    deadline = time.monotonic() + 5
    while b.stats()["events"]["subscribers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    st0 = b.stats()["events"]
    assert st0["types"]["system.startup"]["delivered"] == 1, st0
    for k in ("published", "delivered", "dropped", "invalid", "subscribers",
              "max_subscribers", "refused", "task_events", "types",
              "subscriber_list"):
        assert k in st0, k
    a = Sub(yard, b, ["m.a"])
    mm = Sub(yard, b, ["m."])
    none = Sub(yard, b, ["zzz"])
    everything = Sub(yard, b, [""])
    c = yard.client(b)
    publish(c, [{"type": "m.a"}] * 3 + [{"type": "m.b"}] * 2
            + [{"type": "n.c"}, {"type": "bad type"}])
    publish(c, [{"type": "m.a", "payload": {"k": 1}}, {"type": ""}])
    everything.wait_events(7, 5)
    a.wait_events(4, 5)
    mm.wait_events(6, 5)
    for s in (a, mm, none, everything):
        s.quiet(0.1)
    assert len(a.events) == 4 and len(mm.events) == 6
    assert len(none.events) == 0 and len(everything.events) == 7

    st = b.stats()["events"]
    assert st["published"] - st0["published"] == 7, st
    # + 1: `everything` also got the retained system.startup
    assert st["delivered"] - st0["delivered"] == 4 + 6 + 7 + 1, st
    assert st["dropped"] == 0 and st["invalid"] == 2, st
    assert st["subscribers"] == 4 and st["refused"] == 0, st
    t = st["types"]
    assert t["m.a"] == {"published": 4, "delivered": 12, "dropped": 0}, t
    assert t["m.b"] == {"published": 2, "delivered": 4, "dropped": 0}, t
    assert t["n.c"] == {"published": 1, "delivered": 1, "dropped": 0}, t
    assert "bad type" not in t and "" not in t, t
    ent = {s: sub_entry({"events": st}, s) for s in (a, mm, none, everything)}
    assert (ent[a]["delivered"], ent[a]["sn"], ent[a]["types"], ent[a]["all"]) == \
        (4, 4, ["m.a"], False), ent[a]
    assert (ent[mm]["delivered"], ent[mm]["sn"]) == (6, 6), ent[mm]
    assert (ent[none]["delivered"], ent[none]["sn"], ent[none]["dropped"]) == (0, 0, 0)
    assert (ent[everything]["delivered"], ent[everything]["all"]) == (8, True)
    for e in ent.values():
        assert e["dropped"] == 0 and isinstance(e["age_ms"], int) and e["age_ms"] >= 0, e
    total = sum(e["delivered"] for e in st["subscriber_list"])
    # + 1: the retained event delivered to `first`, which has left
    assert total + 1 == st["delivered"], st


# ---- 9. subscriber liveness ------------------------------------------------


def test_subscriber_liveness(yard):
    b = yard.broker()
    # Unknown identity: HEARTBEAT is answered DISCONNECT (no body).
    stranger = Sub(yard, b, subscribe=False)
    stranger.send(yw.HEARTBEAT)
    m = stranger.wait_cmd(yw.DISCONNECT, 5)
    assert m is not None and m.raw_header == yw.header("B", yw.DISCONNECT), m
    assert m.bodies == [], m

    # Known: HEARTBEAT is answered HEARTBEAT.
    s = Sub(yard, b, ["live."])
    s.send(yw.HEARTBEAT)
    m = s.wait_cmd(yw.HEARTBEAT, 5)
    assert m is not None and m.raw_header == yw.header("B", yw.HEARTBEAT), m
    assert m.bodies == [], m

    # An idle subscriber hears a HEARTBEAT about once per interval (1 s).
    t = time.monotonic()
    m = s.wait_cmd(yw.HEARTBEAT, 3)
    assert m is not None and m.cmd == yw.HEARTBEAT, "no unprompted HEARTBEAT"
    assert time.monotonic() - t < 2.5

    # A subscriber whose socket closes is forgotten (bounded wait).
    gone = Sub(yard, b, ["live."])
    assert b.stats()["events"]["subscribers"] == 2
    gone.close()
    t = time.monotonic()
    b.wait_stats(lambda st: st["events"]["subscribers"] == 1, 6,
                 "the closed subscriber forgotten")
    st = b.stats()["events"]
    assert [e["id"] for e in st["subscriber_list"]] == [s.id_hex], st

    # DISCONNECT from a subscriber forgets it at once; it is then unknown.
    s.send(yw.DISCONNECT)
    b.wait_stats(lambda st: st["events"]["subscribers"] == 0, 2, "DISCONNECT honoured")
    s.drain()
    s.send(yw.HEARTBEAT)
    m = s.wait_cmd(yw.DISCONNECT, 5)
    assert m is not None and m.cmd == yw.DISCONNECT, m
    # ...and it may subscribe again, with sn starting over.
    s.subscribe(["live."])
    c = yard.client(b)
    publish(c, [{"type": "live.again"}])
    ev = s.wait_event(lambda e: e["type"] == "live.again", 5)
    assert ev is not None and ev["sn"] == 1, ev
