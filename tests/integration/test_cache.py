"""yard-cache end to end (PROTOCOL.md 10a): real yard-broker, real
yard-cache processes and a real redis-server (Debian's /usr/bin/redis-server
on a free loopback port, no persistence), driven by raw clients over
ZeroMQ (yardwire) with msgpack requests.

Covered: every op on both tiers, TTL and negative TTL, L1 eviction order,
tags across tiers (L1 emptied, the tag set in Redis still finds the keys),
zlib compression round trip and bytes saved, promotion from L2 to L1, a
Redis killed mid-run (answers keep coming from L1, stats say degraded, a
cache.degraded event) and restarted (cache.recovered), a paused Redis
(timeouts, not hangs) whose missed deletes are replayed on recovery, two
yard-cache processes kept coherent by cache.invalidate events, bad
requests, flags and environment.

The broker hands sequential tasks to the same worker, so to reach both of
two caches the tests submit batches (one SUBMIT message with 2 x capacity
bodies): the broker splits a batch across workers with credit.
"""

import os
import signal
import socket
import subprocess
import time

import msgpack
import pytest
import zmq

import yardwire as yw
from conftest import binary, free_port

SERVICE = "yard.cache"
PUBLISH = 0x10
SUBSCRIBE = 0x12


# ---- Redis --------------------------------------------------------------


class RespError(Exception):
    pass


class Redis:
    """A redis-server child on a free loopback port, and a tiny RESP client
    to look inside it."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout=10.0):
        self.log = open(os.path.join(self.workdir, "redis-%d.log" % self.port), "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/redis-server", "--save", "", "--appendonly", "no",
             "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.workdir],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "redis-server exited at start"
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("redis-server on port %d not answering PING" % self.port)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.log:
            self.log.close()
            self.log = None

    def kill9(self):
        self.stop(signal.SIGKILL)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def cmd(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return self._read(f)

    def _read(self, f):
        line = f.readline()
        if not line:
            raise OSError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise OSError("bad RESP line %r" % line)

    def keys(self, pattern="*"):
        return sorted(self.cmd("KEYS", pattern))


@pytest.fixture
def redis(tmp_path):
    r = Redis(str(tmp_path)).start()
    yield r
    r.stop()


# ---- Cache processes and requests ---------------------------------------


def start_cache(yard, broker, redis=None, args=(), wait=True, env_extra=None):
    """Starts a yard-cache; when wait, returns once the broker lists it and
    it is ready (L2 connected when it has one, coherence subscribed when it
    has an L1)."""
    before = broker.service_stats(SERVICE).get("workers", 0)
    argv = [binary("yard-cache"), "--broker", broker.endpoint,
            "--events", broker.events]
    if redis is not None:
        argv += ["--redis", redis.url]
    argv += list(args)
    env = yard.base_env(broker)
    env.update(env_extra or {})
    p = yard.spawn("yard-cache", argv, env)
    if wait:
        broker.wait_workers(SERVICE, before + 1)
    return p


def packb(req):
    return msgpack.packb(req, use_bin_type=True)


def call_raw(c, req, timeout=10.0):
    payload = req if isinstance(req, bytes) else packb(req)
    r = c.call(SERVICE, payload, timeout=timeout)
    assert r is not None, "no answer from yard.cache to %r" % (req,)
    return r


def call(c, req, timeout=10.0):
    r = call_raw(c, req, timeout)
    assert r["status"] == "ok", r
    return msgpack.unpackb(yw.as_bytes(r.get("payload")), raw=False)


def batch(c, reqs, timeout=10.0):
    """Submits every request in one SUBMIT message; answers in order."""
    ids = [c.next_id("b") for _ in reqs]
    c.submit([c.task(i, SERVICE, packb(q)) for i, q in zip(ids, reqs)])
    got = c.wait_results(ids, timeout)
    assert len(got) == len(ids), "only %d of %d answered" % (len(got), len(ids))
    out = []
    for i in ids:
        assert got[i]["status"] == "ok", got[i]
        out.append(msgpack.unpackb(yw.as_bytes(got[i].get("payload")), raw=False))
    return out


def stats_by_instance(c, n, per=2):
    """Stats of every instance reachable with one batch of n x per
    requests: {instance: stats}."""
    return {s["instance"]: s for s in batch(c, [{"op": "stats"}] * (n * per))}


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(0.05)


def wait_ready(c, n=1, per=2, l2=True, l1=True):
    """Every one of n caches answers stats with its tiers up."""
    def ready():
        st = stats_by_instance(c, n, per)
        return len(st) == n and all(
            (not l2 or s["l2"]["connected"]) and
            (not l1 or s["coherence"]["subscribed"]) for s in st.values())
    wait_for(ready, 15.0, "%d yard-cache(s) ready" % n)


@pytest.fixture
def cache_env(yard, redis):
    """A broker, one yard-cache on the redis fixture, and a client."""
    b = yard.broker()
    start_cache(yard, b, redis)
    c = yard.client(b)
    wait_ready(c, 1, 1)
    return b, c


class EventSub:
    """A raw subscriber on the broker's events endpoint."""

    def __init__(self, yard, broker, types):
        s = yard.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTING_ID, yw.new_routing_id())
        s.connect(broker.events)
        self.sock = s
        yard.peers.append(self)
        self.events = []
        s.send_multipart([yw.header("C", SUBSCRIBE), yw.pack({"types": list(types)})])
        assert s.poll(5000), "SUBSCRIBE not acknowledged"
        m = yw.Msg(s.recv_multipart())
        assert m.cmd == yw.HEARTBEAT, m

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def wait(self, type_, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("type") == type_:
                    self.events.remove(e)
                    return e
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                return None
            m = yw.Msg(self.sock.recv_multipart())
            if m.cmd == PUBLISH:
                self.events.extend(m.bodies)


def payload_of(ev):
    p = ev.get("payload")
    return p if isinstance(p, dict) else msgpack.unpackb(p, raw=False)


# ---- Every op, both tiers -------------------------------------------------


def test_every_op_on_both_tiers(yard, redis, cache_env):
    b, c = cache_env
    assert call(c, {"op": "get", "key": "nothing"}) == {"hit": False}
    assert call(c, {"op": "set", "key": "k1", "value": b"v1"}) == {"stored": True}
    got = call(c, {"op": "get", "key": "k1"})
    assert got["hit"] is True and got["value"] == b"v1" and got["tier"] == "l1"
    assert 0 < got["ttl_ms"] <= 60000  # the L1 default
    # In Redis: PREFIX:k:key, header byte 0 (raw), then the value; PX set.
    assert redis.cmd("GET", "yard:k:k1") == b"\x00v1"
    assert 3500000 < redis.cmd("PTTL", "yard:k:k1") <= 3600000

    # Keys and values are bytes (str accepted).
    call(c, {"op": "set", "key": b"\x00bin\xff", "value": "text"})
    assert call(c, {"op": "get", "key": b"\x00bin\xff"})["value"] == b"text"

    # del: both tiers.
    assert call(c, {"op": "del", "key": "k1"}) == {"deleted": 1}
    assert call(c, {"op": "del", "key": "k1"}) == {"deleted": 0}
    assert call(c, {"op": "get", "key": "k1"}) == {"hit": False}
    assert redis.cmd("EXISTS", "yard:k:k1") == 0

    # Tags: entries and the tag sets in Redis.
    call(c, {"op": "set", "key": "u:1", "value": b"a", "tags": ["user", "team:1"]})
    call(c, {"op": "set", "key": "u:2", "value": b"b", "tags": ["user"]})
    call(c, {"op": "set", "key": "t:1", "value": b"c", "tags": ["team:1"]})
    assert sorted(redis.cmd("SMEMBERS", "yard:t:user")) == [b"u:1", b"u:2"]
    assert redis.cmd("PTTL", "yard:t:user") > 3500000
    raw = redis.cmd("GET", "yard:k:u:1")
    assert raw[0] == 0x04 and raw[1] == 2  # TAGS flag, two tags
    assert call(c, {"op": "invalidate_tags", "tags": ["user"]}) == {"deleted": 2}
    assert call(c, {"op": "get", "key": "u:1"}) == {"hit": False}
    assert call(c, {"op": "get", "key": "t:1"})["hit"] is True
    assert redis.cmd("EXISTS", "yard:t:user") == 0
    assert redis.cmd("EXISTS", "yard:k:u:2") == 0

    # Prefix (glob characters in it are literal) and glob.
    for k in ("p:1", "p:2", "p*x", "q:1", "q:22", "r[1]"):
        call(c, {"op": "set", "key": k, "value": b"x"})
    assert call(c, {"op": "invalidate_prefix", "prefix": "p*"}) == {"deleted": 1}
    assert call(c, {"op": "get", "key": "p:1"})["hit"] is True
    assert call(c, {"op": "invalidate_prefix", "prefix": "p:"}) == {"deleted": 2}
    assert redis.cmd("EXISTS", "yard:k:p:1") == 0
    assert call(c, {"op": "invalidate_glob", "pattern": "q:?"}) == {"deleted": 1}
    assert call(c, {"op": "get", "key": "q:22"})["hit"] is True
    assert call(c, {"op": "invalidate_glob", "pattern": "[!q]\\[1]"}) == {"deleted": 1}
    assert redis.cmd("EXISTS", "yard:k:r[1]") == 0

    # clear: only PREFIX:* in Redis, never anyone else's keys.
    redis.cmd("SET", "someone-else", "keep")
    n = call(c, {"op": "clear"})["deleted"]
    assert n == 3  # t:1, q:22, the binary key
    assert redis.keys("yard:*") == []
    assert redis.cmd("GET", "someone-else") == b"keep"
    assert call(c, {"op": "get", "key": "q:22"}) == {"hit": False}

    st = call(c, {"op": "stats"})
    assert st["degraded"] is False and st["service"] == SERVICE
    assert st["l1"]["enabled"] and st["l2"]["enabled"] and st["l2"]["connected"]
    assert st["l2"]["sets"] == 11 and st["l1"]["sets"] == 11
    assert st["l1"]["entries"] == 0 and st["l1"]["bytes"] == 0
    assert st["l2"]["errors"] == 0
    assert st["coherence"]["published"] == 19  # every mutation above
    assert st["bad_requests"] == 0
    assert st["gets"] == st["hits"] + st["misses"] + st["negative_hits"]


def test_ttl_and_negative_ttl(yard, redis):
    b = yard.broker()
    start_cache(yard, b, redis, ["--negative-ttl-ms", "400"])
    c = yard.client(b)
    wait_ready(c, 1, 1)
    call(c, {"op": "set", "key": "short", "value": b"v", "ttl_ms": 300})
    got = call(c, {"op": "get", "key": "short"})
    assert got["hit"] and 0 < got["ttl_ms"] <= 300
    assert 0 < redis.cmd("PTTL", "yard:k:short") <= 300
    time.sleep(0.45)
    assert call(c, {"op": "get", "key": "short"}) == {"hit": False}
    assert redis.cmd("EXISTS", "yard:k:short") == 0

    # Negative entries: a remembered miss with its own TTL, on both tiers.
    assert call(c, {"op": "set_negative", "key": "gone", "ttl_ms": 300}) == {"stored": True}
    got = call(c, {"op": "get", "key": "gone"})
    assert got["hit"] is False and got["negative"] is True and 0 < got["ttl_ms"] <= 300
    assert redis.cmd("GET", "yard:k:gone") == b"\x02"
    time.sleep(0.45)
    assert call(c, {"op": "get", "key": "gone"}) == {"hit": False}
    # The default negative TTL comes from --negative-ttl-ms.
    call(c, {"op": "set_negative", "key": "gone2"})
    got = call(c, {"op": "get", "key": "gone2"})
    assert got["negative"] is True and 300 < got["ttl_ms"] <= 400
    assert 300 < redis.cmd("PTTL", "yard:k:gone2") <= 400
    # A value replaces a negative entry.
    call(c, {"op": "set", "key": "gone2", "value": b"here"})
    assert call(c, {"op": "get", "key": "gone2"})["value"] == b"here"
    st = call(c, {"op": "stats"})
    assert st["negative_hits"] == 2 and st["l1"]["expirations"] >= 2


def test_promotion_from_l2_to_l1(yard, redis):
    b = yard.broker()
    start_cache(yard, b, redis, ["--l1-ttl-ms", "300"])
    c = yard.client(b)
    wait_ready(c, 1, 1)
    call(c, {"op": "set", "key": "k", "value": b"value", "tags": ["t"]})
    assert call(c, {"op": "get", "key": "k"})["tier"] == "l1"
    time.sleep(0.4)  # L1 copy expired (300 ms), L2 keeps it for an hour
    got = call(c, {"op": "get", "key": "k"})
    assert got["tier"] == "l2" and got["value"] == b"value"
    assert got["ttl_ms"] > 3500000
    got = call(c, {"op": "get", "key": "k"})
    assert got["tier"] == "l1" and got["value"] == b"value"
    assert got["ttl_ms"] <= 300  # promoted with the L1 default
    st = call(c, {"op": "stats"})
    assert st["promotions"] == 1 and st["l2"]["hits"] == 1
    # The two L1 hits were answered on the I/O thread, the L2 hit was not.
    assert st["fast_answers"] == 2 and st["gets"] == 3
    # The promoted copy kept its tags: invalidating the tag drops it.
    time.sleep(0.4)
    call(c, {"op": "get", "key": "k"})  # promoted again
    redis.cmd("DEL", "yard:t:t")  # the L1 tag index alone must find it
    assert call(c, {"op": "invalidate_tags", "tags": ["t"]})["deleted"] == 1
    redis.cmd("DEL", "yard:k:k")
    assert call(c, {"op": "get", "key": "k"}) == {"hit": False}


def test_l1_eviction_order_without_l2(yard):
    b = yard.broker()
    start_cache(yard, b, None, ["--no-l2", "--l1-max-entries", "3"])
    c = yard.client(b)
    wait_ready(c, 1, 1, l2=False)
    for k in ("a", "b", "c"):
        call(c, {"op": "set", "key": k, "value": k})
    assert call(c, {"op": "get", "key": "a"})["hit"]  # b is now the oldest
    call(c, {"op": "set", "key": "d", "value": "d"})
    assert call(c, {"op": "get", "key": "b"}) == {"hit": False}
    for k in ("a", "c", "d"):
        assert call(c, {"op": "get", "key": k})["value"] == k.encode()
    call(c, {"op": "set", "key": "e", "value": "e"})  # evicts a (oldest read)
    assert call(c, {"op": "get", "key": "a"}) == {"hit": False}
    st = call(c, {"op": "stats"})
    assert st["l1"]["evictions"] == 2 and st["l1"]["entries"] == 3
    assert st["l2"]["enabled"] is False and st["degraded"] is False
    # Every op works on L1 alone.
    call(c, {"op": "set", "key": "x:1", "value": "1", "tags": ["x"]})
    assert call(c, {"op": "invalidate_tags", "tags": ["x"]}) == {"deleted": 1}
    call(c, {"op": "set", "key": "y:1", "value": "1"})
    assert call(c, {"op": "invalidate_prefix", "prefix": "y:"}) == {"deleted": 1}
    call(c, {"op": "set", "key": "z1", "value": "1"})
    assert call(c, {"op": "invalidate_glob", "pattern": "z[0-9]"}) == {"deleted": 1}
    assert call(c, {"op": "clear"})["deleted"] == 2  # d and e
    # A value too big for L1 alone is not stored, and says so.
    big = b"x" * (1 << 20)
    start_small = ["--no-l2", "--l1-max-bytes", "65536"]
    yard.procs[-1].stop()
    b.wait_workers(SERVICE, 0)
    start_cache(yard, b, None, start_small)
    assert call(c, {"op": "set", "key": "big", "value": big}) == {"stored": False}
    assert call(c, {"op": "get", "key": "big"}) == {"hit": False}


def test_l2_only(yard, redis):
    b = yard.broker()
    start_cache(yard, b, redis, ["--no-l1"])
    c = yard.client(b)
    wait_ready(c, 1, 1, l1=False)
    call(c, {"op": "set", "key": "k", "value": b"v"})
    assert call(c, {"op": "get", "key": "k"})["tier"] == "l2"
    assert call(c, {"op": "get", "key": "k"})["tier"] == "l2"
    st = call(c, {"op": "stats"})
    assert st["l1"]["enabled"] is False and st["l2"]["hits"] == 2
    assert call(c, {"op": "del", "key": "k"}) == {"deleted": 1}


def test_tags_across_tiers_after_l1_is_gone(yard, redis):
    b = yard.broker()
    p = start_cache(yard, b, redis)
    c = yard.client(b)
    wait_ready(c, 1, 1)
    call(c, {"op": "set", "key": "doc:1", "value": b"1", "tags": ["doc", "a"]})
    call(c, {"op": "set", "key": "doc:2", "value": b"2", "tags": ["doc"]})
    call(c, {"op": "set", "key": "other", "value": b"3", "tags": ["a"]})
    # A new process: its L1 is empty; Redis still knows the tags.
    p.stop()
    b.wait_workers(SERVICE, 0)
    start_cache(yard, b, redis)
    wait_ready(c, 1, 1)
    st = call(c, {"op": "stats"})
    assert st["l1"]["entries"] == 0
    assert call(c, {"op": "invalidate_tags", "tags": ["doc"]}) == {"deleted": 2}
    assert call(c, {"op": "get", "key": "doc:1"}) == {"hit": False}
    assert call(c, {"op": "get", "key": "doc:2"}) == {"hit": False}
    got = call(c, {"op": "get", "key": "other"})
    assert got["hit"] and got["tier"] == "l2"
    # The "a" set still lists doc:1 (sets are not pruned on delete): harmless.
    assert redis.keys("yard:*") == [b"yard:k:other", b"yard:t:a"]
    # Several tags at once, each deleted once.
    assert call(c, {"op": "invalidate_tags", "tags": ["a", "nope"]}) == {"deleted": 1}


def test_compression_round_trip(yard, redis):
    b = yard.broker()
    start_cache(yard, b, redis, ["--compress-min-bytes", "1024", "--l1-ttl-ms", "200"])
    c = yard.client(b)
    wait_ready(c, 1, 1)
    text = (b"the quick brown fox jumps over the lazy dog " * 3000)[:100000]
    noise = os.urandom(4096)
    small = b"a" * 1000  # under the threshold: raw
    call(c, {"op": "set", "key": "text", "value": text})
    call(c, {"op": "set", "key": "noise", "value": noise})
    call(c, {"op": "set", "key": "small", "value": small})
    raw = redis.cmd("GET", "yard:k:text")
    assert raw[0] == 0x01 and len(raw) < 5000  # ZLIB flag, much smaller
    assert redis.cmd("GET", "yard:k:noise")[0] == 0x00  # no gain: raw
    assert redis.cmd("GET", "yard:k:small") == b"\x00" + small
    st = call(c, {"op": "stats"})
    assert st["l2"]["compressed"] == 1
    assert st["l2"]["bytes_saved"] == len(text) - (len(raw) - 1)
    time.sleep(0.3)  # L1 copies expired: the next gets decompress from L2
    for key, value in (("text", text), ("noise", noise), ("small", small)):
        got = call(c, {"op": "get", "key": key})
        assert got["tier"] == "l2" and got["value"] == value, key
    # Garbage in Redis under our prefix is a miss, not a crash.
    redis.cmd("SET", "yard:k:bad", b"\x01not zlib")
    redis.cmd("SET", "yard:k:bad2", b"\x80")
    assert call(c, {"op": "get", "key": "bad"}) == {"hit": False}
    assert call(c, {"op": "get", "key": "bad2"}) == {"hit": False}
    assert call(c, {"op": "stats"})["l2"]["corrupt"] == 2


# ---- Redis failures ---------------------------------------------------------


def test_redis_killed_then_restarted(yard, redis):
    b = yard.broker()
    start_cache(yard, b, redis, ["--redis-timeout-ms", "200"])
    c = yard.client(b)
    wait_ready(c, 1, 1)
    sub = EventSub(yard, b, ["cache.degraded", "cache.recovered"])
    call(c, {"op": "set", "key": "k", "value": b"v"})
    redis.kill9()
    # Noticed without any request touching Redis (the monitor PINGs).
    ev = sub.wait("cache.degraded", 5.0)
    assert ev is not None, "no cache.degraded event"
    p = payload_of(ev)
    assert str(redis.port) in p["redis"] and p["reason"]
    # Requests keep being answered, from L1, promptly.
    for i in range(20):
        t0 = time.monotonic()
        got = call(c, {"op": "get", "key": "k"}, timeout=5)
        assert got["value"] == b"v" and got["tier"] == "l1"
        assert call(c, {"op": "set", "key": "n%d" % i, "value": b"x"}) == {"stored": True}
        assert call(c, {"op": "get", "key": "missing%d" % i}) == {"hit": False}
        assert time.monotonic() - t0 < 1.0
    st = call(c, {"op": "stats"})
    assert st["degraded"] is True and st["l2"]["connected"] is False
    assert st["l2"]["errors"] >= 1 and st["l2"]["degradations"] == 1
    assert st["l2"]["journal"] >= 20  # the sets Redis missed

    redis.start()  # same port, empty
    ev = sub.wait("cache.recovered", 15.0)
    assert ev is not None, "no cache.recovered event"
    assert payload_of(ev)["reconnects"] == 1
    st = wait_for(lambda: (lambda s: s if not s["degraded"] else None)(
        call(c, {"op": "stats"})), 5.0, "not degraded")
    assert st["l2"]["connected"] and st["l2"]["reconnects"] == 1
    assert st["l2"]["journal"] == 0 and st["l2"]["replayed"] >= 20
    call(c, {"op": "set", "key": "after", "value": b"ok"})
    assert redis.cmd("GET", "yard:k:after") == b"\x00ok"


def test_redis_paused_times_out_and_replays_deletes(yard, redis):
    b = yard.broker()
    start_cache(yard, b, redis, ["--redis-timeout-ms", "200", "--l1-ttl-ms", "100000"])
    c = yard.client(b)
    wait_ready(c, 1, 1)
    call(c, {"op": "set", "key": "keep", "value": b"1"})
    call(c, {"op": "set", "key": "stale", "value": b"old", "tags": ["t"]})
    call(c, {"op": "set", "key": "tagged", "value": b"old", "tags": ["t"]})
    redis.pause()  # a hung Redis: connections open, no answers
    try:
        t0 = time.monotonic()
        assert call(c, {"op": "del", "key": "stale"}, timeout=5) == {"deleted": 1}
        assert time.monotonic() - t0 < 2.0, "a hung Redis must time out"
        assert call(c, {"op": "invalidate_tags", "tags": ["t"]}, timeout=5)["deleted"] >= 1
        st = call(c, {"op": "stats"}, timeout=5)
        assert st["degraded"] is True and st["l2"]["journal"] >= 2
    finally:
        redis.resume()
    st = wait_for(lambda: (lambda s: s if not s["degraded"] else None)(
        call(c, {"op": "stats"})), 15.0, "recovery after SIGCONT")
    assert st["l2"]["replayed"] >= 2
    # What Redis missed while hung was replayed: no stale entry survives.
    assert redis.cmd("EXISTS", "yard:k:stale") == 0
    assert redis.cmd("EXISTS", "yard:k:tagged") == 0
    assert redis.cmd("GET", "yard:k:keep") == b"\x001"


def test_redis_down_at_start(yard, tmp_path):
    dead = Redis(str(tmp_path))  # never started: nothing listens
    b = yard.broker()
    sub = EventSub(yard, b, ["cache."])
    start_cache(yard, b, dead, ["--redis-timeout-ms", "200"])
    c = yard.client(b)
    wait_ready(c, 1, 1, l2=False)
    try:
        assert sub.wait("cache.degraded", 5.0) is not None
        assert call(c, {"op": "set", "key": "k", "value": b"v"}) == {"stored": True}
        assert call(c, {"op": "get", "key": "k"})["tier"] == "l1"
        assert call(c, {"op": "stats"})["degraded"] is True
        dead.start()
        assert sub.wait("cache.recovered", 15.0) is not None
        # The set made while Redis was away left nothing stale there.
        assert dead.cmd("EXISTS", "yard:k:k") == 0
    finally:
        dead.stop()


# ---- Coherence ---------------------------------------------------------------


def test_two_caches_stay_coherent(yard, redis):
    b = yard.broker()
    start_cache(yard, b, redis, ["--capacity", "2"])
    start_cache(yard, b, redis, ["--capacity", "2"])
    c = yard.client(b)
    wait_ready(c, 2, 2)

    def applied():
        return sum(s["coherence"]["applied"] for s in stats_by_instance(c, 2).values())

    def gets(key, want):
        """8 gets in one batch, so both caches answer some."""
        answers = batch(c, [{"op": "get", "key": key}] * 8)
        for a in answers:
            if want is None:
                assert a == {"hit": False}, a
            else:
                assert a.get("value") == want, a
        return answers

    call(c, {"op": "set", "key": "k", "value": b"v1"})
    state = b"v1"
    for change, want in (
            ({"op": "set", "key": "k", "value": b"v2"}, b"v2"),
            ({"op": "del", "key": "k"}, None),
            ({"op": "set", "key": "k", "value": b"v3", "tags": ["tg"]}, b"v3"),
            ({"op": "invalidate_tags", "tags": ["tg"]}, None),
            ({"op": "set", "key": "k", "value": b"v4"}, b"v4"),
            ({"op": "invalidate_prefix", "prefix": "k"}, None),
            ({"op": "set", "key": "k", "value": b"v5"}, b"v5"),
            ({"op": "invalidate_glob", "pattern": "?"}, None),
            ({"op": "set", "key": "k", "value": b"v6"}, b"v6"),
            ({"op": "clear"}, None)):
        if state is not None:
            # Fill both L1s: the cache that did not write the value reads
            # it from L2 once and keeps a copy. The broker usually shares
            # one batch between the two caches, but may hand it all to one
            # when the other is busy: batches until both hold it.
            def both_filled():
                gets("k", state)
                st = stats_by_instance(c, 2)
                return len(st) == 2 and all(
                    s["l1"]["entries"] >= 1 for s in st.values())
            wait_for(both_filled, 5.0, "both L1s to hold %r" % (state,))
        before = applied()
        call(c, change)
        # The other cache applies the event (eventual, but fast) ...
        wait_for(lambda: applied() > before, 5.0,
                 "the other cache to apply %r" % (change,))
        # ... and from then on every get from either answers the new state.
        gets("k", want)
        state = want
    st = stats_by_instance(c, 2)
    assert sum(s["coherence"]["applied"] for s in st.values()) == 11
    # Each cache also gets its own events back (and ignores them); they
    # arrive asynchronously, like everything on the bus.
    wait_for(lambda: sum(s["coherence"]["own"]
                         for s in stats_by_instance(c, 2).values()) == 11,
             5.0, "both caches to see their own 11 events")
    assert all(s["coherence"]["missed"] == 0 for s in st.values())


def test_coherence_without_redis(yard):
    """L1-only caches: coherence rests on the events alone."""
    b = yard.broker()
    start_cache(yard, b, None, ["--no-l2", "--capacity", "2"])
    start_cache(yard, b, None, ["--no-l2", "--capacity", "2"])
    c = yard.client(b)
    wait_ready(c, 2, 2, l2=False)
    # Four keys set in one batch: each cache keeps the two it was given.
    keys = ["k%d" % i for i in range(4)]
    batch(c, [{"op": "set", "key": k, "value": b"old"} for k in keys])

    def applied():
        return sum(s["coherence"]["applied"] for s in
                   stats_by_instance(c, 2).values())

    wait_for(lambda: applied() == 4, 5.0, "the set events applied")
    st = stats_by_instance(c, 2)
    assert sorted(s["l1"]["entries"] for s in st.values()) == [2, 2], st
    # Deleted one by one (all through one cache): the other cache drops its
    # copies on the events alone.
    for k in keys:
        assert call(c, {"op": "del", "key": k})["deleted"] in (0, 1)
    wait_for(lambda: applied() == 8, 5.0, "the del events applied")
    for k in keys:
        assert batch(c, [{"op": "get", "key": k}] * 4) == [{"hit": False}] * 4
    st = stats_by_instance(c, 2)
    assert [s["l1"]["entries"] for s in st.values()] == [0, 0], st


# ---- Bad input, flags --------------------------------------------------------


def test_bad_requests(yard):
    # bad_request answers are "invalid": the client's mistake, which the
    # broker's circuit breaker does not count. With the default breaker
    # settings (5 failures open it), 24 bad requests in a row leave it
    # closed for everyone.
    b = yard.broker()
    start_cache(yard, b, None, ["--no-l2"])
    c = yard.client(b)
    wait_ready(c, 1, 1, l2=False)
    bad = [
        (b"", "empty"),
        (b"\xc1", "msgpack"),
        (b"\x93\x01\x02\x03", "map"),
        (packb({"key": "k"}), "missing 'op'"),
        (packb({"op": "explode"}), "unknown op"),
        (packb({"op": 7}), "'op' must be"),
        (packb({"op": "get"}), "needs 'key'"),
        (packb({"op": "get", "key": ""}), "1..1024"),
        (packb({"op": "get", "key": "x" * 1025}), "1..1024"),
        (packb({"op": "get", "key": 12}), "bin or str"),
        (packb({"op": "set", "key": "k"}), "needs 'value'"),
        (packb({"op": "set", "key": "k", "value": 1}), "'value'"),
        (packb({"op": "set", "key": "k", "value": "v", "ttl_ms": -1}), "ttl_ms"),
        (packb({"op": "set", "key": "k", "value": "v", "ttl_ms": "1"}), "ttl_ms"),
        (packb({"op": "set", "key": "k", "value": "v", "tags": "t"}), "tags"),
        (packb({"op": "set", "key": "k", "value": "v", "tags": ["t"] * 17}), "at most 16"),
        (packb({"op": "set", "key": "k", "value": "v", "tags": [""]}), "1..128"),
        (packb({"op": "set", "key": "k", "value": "v", "tags": ["x" * 129]}), "1..128"),
        (packb({"op": "invalidate_tags", "tags": []}), "needs 'tags'"),
        (packb({"op": "invalidate_prefix"}), "needs 'prefix'"),
        (packb({"op": "invalidate_glob", "pattern": "a\x00b"}), "without NUL"),
        (packb({"op": "invalidate_glob", "pattern": b"bin"}), "'pattern' must be"),
        (b"\x82\xa2op\xa3get\xa2op\xa3del", "given twice"),
        (b"\xdd\xff\x00\x00\x00", "msgpack"),  # msgpack-c #1013
    ]
    for payload, text in bad:
        r = call_raw(c, payload)
        assert r["status"] == "invalid", (payload, r)
        assert r["error"].startswith("bad_request: "), r
        assert text in r["error"], (text, r["error"])
    st = call(c, {"op": "stats"})
    assert st["bad_requests"] == len(bad)
    brk = b.stats()["services"]["yard.cache"]["breaker"]
    assert brk["state"] == "closed" and brk["failed"] == 0, brk
    # Unknown keys are ignored; the cache still works.
    assert call(c, {"op": "set", "key": "k", "value": "v", "extra": [1, 2]}) == {"stored": True}


def test_flags_env_and_prefix(yard, redis):
    exe = binary("yard-cache")
    h = subprocess.run([exe, "--help"], capture_output=True, timeout=10)
    assert h.returncode == 0
    for flag in ("--broker", "--events", "--redis", "--no-l1", "--no-l2",
                 "--l1-max-entries", "--l1-max-bytes", "--l1-ttl-ms",
                 "--l2-ttl-ms", "--negative-ttl-ms", "--prefix",
                 "--compress-min-bytes", "--capacity", "--name",
                 "--log-level", "--version", "YARD_REDIS"):
        assert flag.encode() in h.stdout, flag
    v = subprocess.run([exe, "--version"], capture_output=True, timeout=10)
    assert v.returncode == 0 and v.stdout.startswith(b"yard-cache ")
    for argv, env in ((["--bogus"], {}), (["--l1-max-entries", "0"], {}),
                      (["--l2-ttl-ms", "x"], {}), (["--no-l1", "--no-l2"], {}),
                      (["--redis", "ftp://h"], {}), (["--prefix", "a b"], {}),
                      ([], {"YARD_CACHE_CAPACITY": "0"}),
                      ([], {"YARD_CACHE_NO_L2": "maybe"})):
        e = dict(os.environ)
        e.update(env)
        r = subprocess.run([exe] + argv, capture_output=True, timeout=10, env=e)
        assert r.returncode == 2, (argv, env, r)
        assert r.stderr, (argv, env)

    # Flag beats environment beats default: the prefix in Redis says which.
    b = yard.broker()
    p = start_cache(yard, b, redis, env_extra={"YARD_CACHE_PREFIX": "envp"})
    c = yard.client(b)
    wait_ready(c, 1, 1)
    call(c, {"op": "set", "key": "k", "value": b"v"})
    assert redis.cmd("EXISTS", "envp:k:k") == 1
    p.stop()
    b.wait_workers(SERVICE, 0)
    start_cache(yard, b, redis, ["--prefix", "flagp"],
                env_extra={"YARD_CACHE_PREFIX": "envp"})
    wait_ready(c, 1, 1)
    call(c, {"op": "set", "key": "k", "value": b"v"})
    assert redis.cmd("EXISTS", "flagp:k:k") == 1
    # YARD_REDIS picks the server when no --redis is given.
    p = yard.procs[-1]
    p.stop()
    b.wait_workers(SERVICE, 0)
    start_cache(yard, b, None, ["--prefix", "viaenv"],
                env_extra={"YARD_REDIS": "127.0.0.1:%d" % redis.port})
    wait_ready(c, 1, 1)
    call(c, {"op": "set", "key": "k", "value": b"v"})
    assert redis.cmd("EXISTS", "viaenv:k:k") == 1
