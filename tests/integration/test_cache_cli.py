"""`yard cache` (clients/cli_cache.c) end to end: a real yard-broker, a real
yard-cache on a real redis-server (Debian's /usr/bin/redis-server on a free
loopback port, no persistence, stopped by its PID), driven through the CLI.

Exit codes: 0 ok; 1 get missed (miss or negative), set not stored, the
cache refused the request (bad_request) or failed, or a malformed answer;
2 usage; 3 timeout (no yard-cache); 4 circuit_open; 6 unreachable.

A scripted worker of yard.cache (yardwire.RawWorker) checks the requests the
CLI builds and feeds it malformed answers, which must be exit 1, never a
crash."""

import base64
import json
import os
import signal
import socket
import subprocess
import time

import msgpack
import pytest

from conftest import binary, free_port

SERVICE = "yard.cache"


# ---- Redis and yard-cache (the approach of test_cache.py) -----------------


class Redis:
    """A redis-server child on a free loopback port."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.proc = None
        self.log = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def ping(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.makefile("rb").readline()

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
                if self.ping() == b"+PONG\r\n":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("redis-server on port %d not answering PING" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.log:
            self.log.close()
            self.log = None


@pytest.fixture
def redis(tmp_path):
    r = Redis(str(tmp_path)).start()
    yield r
    r.stop()


def cli(yard, b, args, input=None, timeout=30.0):
    return yard.cli(b, ["cache"] + list(args), input=input, timeout=timeout)


def ok(p):
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout


def stats_json(yard, b):
    p = cli(yard, b, ["stats", "--json"])
    return json.loads(ok(p))


@pytest.fixture
def cache_env(yard, redis):
    """A broker and one yard-cache on the redis fixture, ready: L2
    connected and coherence subscribed (seen through `yard cache stats`)."""
    b = yard.broker()
    argv = [binary("yard-cache"), "--broker", b.endpoint, "--events", b.events,
            "--redis", redis.url]
    yard.spawn("yard-cache", argv, yard.base_env(b))
    b.wait_workers(SERVICE, 1)
    deadline = time.monotonic() + 15
    while True:
        st = stats_json(yard, b)
        if st["l2"]["connected"] and st["coherence"]["subscribed"]:
            return b
        assert time.monotonic() < deadline, "yard-cache not ready: %r" % st
        time.sleep(0.05)


# ---- Every subcommand --------------------------------------------------------


def test_set_get_del(yard, cache_env):
    b = cache_env
    assert ok(cli(yard, b, ["set", "k1", "hello world"])) == b"stored\n"
    # get: the value's bytes exactly, no newline added.
    assert ok(cli(yard, b, ["get", "k1"])) == b"hello world"
    j = json.loads(ok(cli(yard, b, ["get", "--json", "k1"])))
    assert j["hit"] is True and j["value"] == "hello world", j
    assert j["tier"] == "l1" and 0 < j["ttl_ms"] <= 60000, j
    # Flags before the subcommand work too.
    j = json.loads(ok(cli(yard, b, ["--json", "get", "k1"])))
    assert j["value"] == "hello world"

    p = cli(yard, b, ["get", "nothing"])
    assert p.returncode == 1 and p.stdout == b"", p
    assert b"miss" in p.stderr and b"negative" not in p.stderr, p.stderr
    p = cli(yard, b, ["get", "--json", "nothing"])
    assert p.returncode == 1 and json.loads(p.stdout) == {"hit": False}, p

    assert ok(cli(yard, b, ["del", "k1"])) == b"deleted 1\n"
    assert ok(cli(yard, b, ["del", "k1"])) == b"deleted 0\n"
    assert json.loads(ok(cli(yard, b, ["del", "--json", "k1"]))) == {"deleted": 0}
    assert cli(yard, b, ["get", "k1"]).returncode == 1

    # A key and a value starting with '-' after '--'.
    ok(cli(yard, b, ["set", "--", "-k", "-v"]))
    assert ok(cli(yard, b, ["get", "--", "-k"])) == b"-v"

    # --ttl applies: the entry is gone after it (both tiers).
    assert ok(cli(yard, b, ["set", "--ttl", "3000", "short", "x"])) == b"stored\n"
    j = json.loads(ok(cli(yard, b, ["get", "--json", "short"])))
    assert j["value"] == "x" and 0 < j["ttl_ms"] <= 3000, j
    deadline = time.monotonic() + 10
    while cli(yard, b, ["get", "short"]).returncode == 0:
        assert time.monotonic() < deadline, "entry outlived its --ttl"
        time.sleep(0.1)
    # --json on set: the answer.
    assert json.loads(ok(cli(yard, b, ["set", "--json", "j", "v"]))) == {"stored": True}


def test_binary_values_through_stdin(yard, cache_env):
    b = cache_env
    blob = bytes(range(256)) * 40 + b"\x00\xff"
    assert ok(cli(yard, b, ["set", "bin", "-"], input=blob)) == b"stored\n"
    assert ok(cli(yard, b, ["get", "bin"])) == blob
    j = json.loads(ok(cli(yard, b, ["get", "--json", "bin"])))
    assert list(j["value"].keys()) == ["$bin"], j
    assert base64.b64decode(j["value"]["$bin"]) == blob
    # UTF-8 is a JSON string, whatever the characters.
    text = "h\u00e9llo \u2603\n".encode()
    ok(cli(yard, b, ["set", "utf8", "-"], input=text))
    assert ok(cli(yard, b, ["get", "utf8"])) == text
    assert json.loads(ok(cli(yard, b, ["get", "--json", "utf8"])))["value"] == \
        text.decode()
    # An empty value is a hit with no bytes.
    ok(cli(yard, b, ["set", "empty", "-"], input=b""))
    p = cli(yard, b, ["get", "empty"])
    assert p.returncode == 0 and p.stdout == b"", p
    assert json.loads(ok(cli(yard, b, ["get", "--json", "empty"])))["value"] == ""
    # A large value (zlib-compressed in L2) comes back byte for byte.
    big = os.urandom(1000) * 200
    ok(cli(yard, b, ["set", "big", "-"], input=big))
    assert ok(cli(yard, b, ["get", "big"])) == big


def test_tags_prefix_glob_clear(yard, cache_env):
    b = cache_env
    ok(cli(yard, b, ["set", "--tag", "user", "--tag", "team:1", "u:1", "a"]))
    ok(cli(yard, b, ["set", "--tag", "user", "u:2", "b"]))
    ok(cli(yard, b, ["set", "--tag", "team:1", "t:1", "c"]))
    ok(cli(yard, b, ["set", "--tag", "other", "o:1", "d"]))
    assert ok(cli(yard, b, ["invalidate-tag", "user"])) == b"deleted 2\n"
    assert cli(yard, b, ["get", "u:1"]).returncode == 1
    assert cli(yard, b, ["get", "u:2"]).returncode == 1
    assert ok(cli(yard, b, ["get", "t:1"])) == b"c"
    # Several tags at once; an unknown one deletes nothing.
    assert ok(cli(yard, b, ["invalidate-tag", "team:1", "other", "nope"])) == \
        b"deleted 2\n"
    assert cli(yard, b, ["get", "o:1"]).returncode == 1
    assert json.loads(ok(cli(yard, b, ["invalidate-tag", "--json", "nope"]))) == \
        {"deleted": 0}

    for k in ("p:1", "p:2", "p*x", "q:1", "q:22", "r[1]"):
        ok(cli(yard, b, ["set", k, "x"]))
    # The prefix is literal: 'p*' is only p*x.
    assert ok(cli(yard, b, ["invalidate-prefix", "p*"])) == b"deleted 1\n"
    assert ok(cli(yard, b, ["get", "p:1"])) == b"x"
    assert ok(cli(yard, b, ["invalidate-prefix", "p:"])) == b"deleted 2\n"
    assert cli(yard, b, ["get", "p:2"]).returncode == 1
    # Glob: ? is one character.
    assert ok(cli(yard, b, ["invalidate-glob", "q:?"])) == b"deleted 1\n"
    assert ok(cli(yard, b, ["get", "q:22"])) == b"x"
    assert ok(cli(yard, b, ["invalidate-glob", "[r]\\[1]"])) == b"deleted 1\n"
    assert cli(yard, b, ["get", "r[1]"]).returncode == 1

    # clear: what is left (q:22).
    assert ok(cli(yard, b, ["clear"])) == b"deleted 1\n"
    assert cli(yard, b, ["get", "q:22"]).returncode == 1
    assert json.loads(ok(cli(yard, b, ["clear", "--json"]))) == {"deleted": 0}


def test_set_negative(yard, cache_env):
    b = cache_env
    assert ok(cli(yard, b, ["set-negative", "--ttl", "20000", "gone"])) == b"stored\n"
    p = cli(yard, b, ["get", "gone"])
    assert p.returncode == 1 and p.stdout == b"", p
    assert b"negative" in p.stderr, p.stderr
    p = cli(yard, b, ["get", "--json", "gone"])
    assert p.returncode == 1, p
    j = json.loads(p.stdout)
    assert j["hit"] is False and j["negative"] is True, j
    assert 0 < j["ttl_ms"] <= 20000, j
    # Without --ttl: the cache's negative default.
    ok(cli(yard, b, ["set-negative", "gone2"]))
    assert b"negative" in cli(yard, b, ["get", "gone2"]).stderr
    # A value replaces the negative entry; del removes one.
    ok(cli(yard, b, ["set", "gone", "back"]))
    assert ok(cli(yard, b, ["get", "gone"])) == b"back"
    assert ok(cli(yard, b, ["del", "gone2"])) == b"deleted 1\n"
    p = cli(yard, b, ["get", "gone2"])
    assert p.returncode == 1 and b"miss" in p.stderr, p


def test_stats(yard, cache_env):
    b = cache_env
    ok(cli(yard, b, ["set", "s1", "abc"]))
    ok(cli(yard, b, ["get", "s1"]))
    cli(yard, b, ["get", "absent"])
    st = stats_json(yard, b)
    assert st["service"] == SERVICE and st["degraded"] is False, st
    assert st["l1"]["entries"] == 1 and st["l1"]["bytes"] > 0, st["l1"]
    assert st["l2"]["connected"] is True, st["l2"]
    assert st["hits"] >= 1 and st["misses"] >= 1, st
    assert 0 < st["hit_rate"] < 1, st
    text = ok(cli(yard, b, ["stats"])).decode()
    for word in ("degraded   no", "hit rate", "L1         on", "L2         connected",
                 "entries 1 of", "bytes", "misses", st["instance"]):
        assert word in text, (word, text)


def test_bad_request_from_the_cache_exits_1(yard, redis):
    # The request is well formed but breaks the cache's limits: the cache
    # judges it (bad_request, status invalid), not the CLI. The breaker
    # setting only makes sure that five of them in a row could never open
    # yard.cache's breaker, whatever status they are answered with.
    b = yard.broker("--breaker", "yard.cache.count=timeout,lost")
    yard.spawn("yard-cache", [binary("yard-cache"), "--broker", b.endpoint,
                              "--events", b.events, "--redis", redis.url],
               yard.base_env(b))
    b.wait_workers(SERVICE, 1)
    for args, why in ((["get", "k" * 1025], b"1..1024"),
                      (["get", ""], b"1..1024"),
                      (["set", "--ttl", "10000000000000", "k", "v"], b"ttl_ms"),
                      (["set", "--tag", "x" * 129, "k", "v"], b"1..128"),
                      (["invalidate-tag"] + ["t%d" % i for i in range(17)],
                       b"at most 16")):
        p = cli(yard, b, args)
        assert p.returncode == 1, (args, p)
        assert b"bad_request" in p.stderr and why in p.stderr, (args, p.stderr)
        assert p.stdout == b""
    assert ok(cli(yard, b, ["set", "k", "v"])) == b"stored\n"


@pytest.mark.parametrize("args", [
    [],
    ["bogus"],
    ["get"],
    ["get", "a", "b"],
    ["set", "k"],
    ["set", "k", "v", "w"],
    ["set-negative"],
    ["del"],
    ["invalidate-tag"],
    ["invalidate-prefix"],
    ["invalidate-prefix", "a", "b"],
    ["invalidate-glob"],
    ["clear", "x"],
    ["stats", "x"],
    ["get", "--no-such-flag", "k"],
    ["get", "--timeout", "soon", "k"],
    ["get", "--timeout", "0", "k"],
    ["get", "--timeout"],
    ["set", "--ttl", "-5", "k", "v"],
    ["set", "--ttl", "soon", "k", "v"],
    ["get", "--ttl", "5", "k"],
    ["del", "--tag", "t", "k"],
    ["set-negative", "--tag", "t", "k"],
])
def test_usage_errors_exit_2(yard, args):
    b = yard.broker()
    t0 = time.monotonic()
    p = cli(yard, b, args, timeout=10)
    assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip() and p.stdout == b"", p
    assert time.monotonic() - t0 < 3, "a usage error must not wait for anyone"


def test_help(yard):
    b = yard.broker()
    p = cli(yard, b, ["--help"])
    text = ok(p).decode()
    for sub in ("get", "set", "set-negative", "del", "invalidate-tag",
                "invalidate-prefix", "invalidate-glob", "clear", "stats",
                "--json", "--timeout"):
        assert sub in text, sub
    for sub in ("get", "set", "set-negative", "del", "invalidate-tag",
                "invalidate-prefix", "invalidate-glob", "clear", "stats"):
        text = ok(cli(yard, b, [sub, "--help"])).decode()
        assert text.startswith("usage: yard cache %s " % sub), text
        assert "--timeout" in text
    assert "--ttl" in ok(cli(yard, b, ["set", "--help"])).decode()
    assert b"cache" in ok(yard.cli(b, ["--help"]))


def test_no_cache_running_times_out(yard):
    b = yard.broker()
    t0 = time.monotonic()
    p = cli(yard, b, ["get", "--timeout", "600", "k"], timeout=15)
    elapsed = time.monotonic() - t0
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert b"timeout" in p.stderr and p.stdout == b"", p
    assert elapsed < 3.0, elapsed


def test_broker_unreachable_exits_6(yard):
    b = yard.broker(start=False)  # ports chosen, nothing listening
    p = cli(yard, b, ["stats", "--timeout", "20000"], timeout=20)
    assert p.returncode == 6, (p.returncode, p.stderr)


# ---- A scripted yard.cache: the requests, malformed answers, failures ----


def scripted(yard, b, args, answer, status="ok", error=None):
    """Runs `yard cache ARGS` against the raw worker w of b; answers its
    task with answer (bytes); returns (request map, exit code, stderr)."""
    proc = yard.cli_bg(b, ["cache", "--timeout", "10000"] + list(args))
    tasks = b.raw.next_tasks(10)
    assert len(tasks) == 1, tasks
    t = tasks[0]
    assert t["service"] == SERVICE
    b.raw.result(t["job"], status, answer, error=error)
    rc = proc.wait(10)
    assert rc is not None, "yard cache did not exit"
    req = msgpack.unpackb(t["payload"], raw=False)
    return req, rc, proc.err_path.read_bytes(), proc.out_path.read_bytes()


@pytest.fixture
def raw_env(yard):
    b = yard.broker("--breaker", "yard.cache.fail_threshold=2")
    b.raw = yard.raw_worker(b, SERVICE, capacity=1)
    b.wait_workers(SERVICE, 1)
    return b


def test_requests_the_cli_builds(yard, raw_env):
    b = raw_env
    pk = msgpack.packb
    req, rc, _, out = scripted(
        yard, b, ["set", "--ttl", "1500", "--tag", "a", "--tag", "b", "k", "v"],
        pk({"stored": True}))
    assert req == {"op": "set", "key": b"k", "value": b"v", "ttl_ms": 1500,
                   "tags": ["a", "b"]}, req
    assert rc == 0 and out == b"stored\n"
    req, rc, _, _ = scripted(yard, b, ["set", "k", "v"], pk({"stored": True}))
    assert req == {"op": "set", "key": b"k", "value": b"v"}, req
    req, rc, _, _ = scripted(yard, b, ["set-negative", "--ttl", "0", "k"],
                             pk({"stored": True}))
    assert req == {"op": "set_negative", "key": b"k", "ttl_ms": 0}, req
    for args, want in ((["get", "k"], {"op": "get", "key": b"k"}),
                       (["del", "k"], {"op": "del", "key": b"k"}),
                       (["invalidate-tag", "x", "y"],
                        {"op": "invalidate_tags", "tags": ["x", "y"]}),
                       (["invalidate-prefix", "p:"],
                        {"op": "invalidate_prefix", "prefix": b"p:"}),
                       (["invalidate-glob", "a*"],
                        {"op": "invalidate_glob", "pattern": "a*"}),
                       (["clear"], {"op": "clear"}),
                       (["stats"], {"op": "stats"})):
        answer = {"hit": False} if args[0] == "get" else {"deleted": 0}
        req, _, _, _ = scripted(yard, b, args, pk(answer))
        assert req == want, (args, req)
    # {stored: false}: no tier kept it.
    _, rc, err, out = scripted(yard, b, ["set", "k", "v"], pk({"stored": False}))
    assert rc == 1 and b"not stored" in err and out == b"", (rc, err, out)
    # An uint64 above 2^63-1 in --json is a decimal string.
    _, rc, _, out = scripted(yard, b, ["del", "--json", "k"],
                             pk({"deleted": 2**64 - 1}))
    assert rc == 0 and json.loads(out) == {"deleted": str(2**64 - 1)}, out
    # A str value (allowed on the wire) prints as well.
    _, rc, _, out = scripted(yard, b, ["get", "k"], pk({"hit": True, "value": "s"}))
    assert rc == 0 and out == b"s"


def test_malformed_answers_exit_1(yard, raw_env):
    b = raw_env
    pk = msgpack.packb
    bad = [
        (["get", "k"], b""),
        (["get", "k"], b"\xc1"),
        (["get", "k"], b"\xdd\xff\x00\x00\x00"),  # msgpack-c #1013
        (["get", "k"], b"\x81\xa3hit"),  # truncated
        (["get", "k"], pk([1, 2, 3])),
        (["get", "k"], pk({"hit": "yes"})),
        (["get", "k"], pk({"hit": True})),
        (["get", "k"], pk({"hit": True, "value": 5})),
        (["get", "--json", "k"], pk({"hit": False, "negative": 1})),
        (["set", "k", "v"], pk({"stored": 1})),
        (["del", "k"], pk({"deleted": -1})),
        (["clear"], pk({})),
        (["stats"], pk("not a map")),
        (["stats", "--json"], pk({"a": 1}) + b"\x00"),  # trailing bytes
    ]
    for args, answer in bad:
        _, rc, err, out = scripted(yard, b, args, answer)
        assert rc == 1, (args, answer, rc, err)
        assert b"malformed answer" in err, (args, err)
        assert out == b"", (args, out)
    # Odd but well-formed: stats prints what it finds ("-" for the rest).
    _, rc, _, out = scripted(yard, b, ["stats"], pk({"l1": 7, "weird": [1]}))
    assert rc == 0 and b"degraded" in out, out


def test_error_answers_and_circuit_open(yard, raw_env):
    b = raw_env
    _, rc, err, _ = scripted(yard, b, ["get", "k"], b"", status="error",
                             error="boom")
    assert rc == 1 and b"error: boom" in err, (rc, err)
    _, rc, err, _ = scripted(yard, b, ["get", "k"], b"", status="error",
                             error="boom again")
    assert rc == 1
    # fail_threshold=2: the breaker is open, the broker answers at once.
    p = cli(yard, b, ["get", "k"], timeout=10)
    assert p.returncode == 4 and b"circuit_open" in p.stderr, p
