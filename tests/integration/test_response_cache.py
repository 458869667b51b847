"""Response caching in the broker (PROTOCOL.md 10b), end to end: a real
yard-broker, yard-cache, redis-server and workers.

Covered: a repeated task is answered from the cache (cached, no worker
runs), different parameters are not, fields left out of the key do not
matter; identical tasks in flight together run once (single flight); a
failed task is not stored and its waiters run; a bad cache policy is
refused; without a yard.cache worker, or with yard.cache gone mid-run, tasks
still run."""

import json
import time

import msgpack

from test_cache import redis, start_cache  # noqa: F401 (fixture)

CACHE = {"ttl_ms": 60000}


def mp(obj):
    return msgpack.packb(obj, use_bin_type=True)


def svc(st, name):
    return st["services"].get(name, {})


def stored(b, sets):
    """Storing a result is asynchronous (the broker's "set" to yard.cache
    follows the answer): waits until yard.cache has completed `sets` sets
    plus the lookups before them, i.e. nothing of it is queued or running."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = b.stats()
        yc = svc(st, "yard.cache")
        if (yc.get("queued", 0) == 0 and yc.get("in_flight", 0) == 0
                and yc.get("completed", 0) >= sets):
            return
        time.sleep(0.02)
    raise AssertionError("yard.cache did not store %d result(s)" % sets)


def test_repeated_task_is_answered_from_cache(yard, redis):  # noqa: F811
    b = yard.broker()
    start_cache(yard, b, redis)
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    r1 = c.call("echo", b"hello", cache=CACHE)
    assert r1["status"] == "ok" and not r1.get("cached"), r1
    assert r1.get("attempts") == 1, r1
    stored(b, 2)  # the lookup and the set
    r2 = c.call("echo", b"hello", cache=CACHE)
    assert r2["status"] == "ok" and r2.get("cached") is True, r2
    assert r2["payload"] == b"hello" and not r2.get("attempts"), r2
    r3 = c.call("echo", b"other", cache=CACHE)
    assert r3["status"] == "ok" and not r3.get("cached"), r3
    st = b.stats()
    e = svc(st, "echo")
    assert e["cache_hits"] == 1 and e["cache_misses"] == 2, e
    assert e["completed"] == 3, e
    # The worker ran two of the three.
    assert sum(w["done"] for w in st["workers"] if w["service"] == "echo") == 2


def test_key_fields_and_exclusions(yard, redis):  # noqa: F811
    b = yard.broker()
    start_cache(yard, b, redis)
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    pol = {"ttl_ms": 60000, "key": ["prompt", "model"]}
    p1 = mp({"prompt": "hi", "model": "m1", "request_id": "r1"})
    p2 = mp({"request_id": "r2", "model": "m1", "prompt": "hi"})
    p3 = mp({"prompt": "hi", "model": "m2", "request_id": "r3"})
    r1 = c.call("echo", p1, cache=pol)
    stored(b, 2)
    r2 = c.call("echo", p2, cache=pol)
    r3 = c.call("echo", p3, cache=pol)
    assert not r1.get("cached") and r2.get("cached") and not r3.get("cached")
    # The cached answer is the first task's result, byte for byte.
    assert r2["payload"] == p1
    ex = {"exclude": ["request_id"]}
    # Excluding request_id keys on the same fields as key: [prompt, model]:
    # the same key, so both are hits.
    assert c.call("echo", p1, cache=ex).get("cached") is True
    assert c.call("echo", p2, cache=ex).get("cached") is True


def test_identical_tasks_run_once(yard, redis):  # noqa: F811
    b = yard.broker()
    start_cache(yard, b, redis)
    yard.worker(b, "slow", "sleep", capacity=4)
    c = yard.client(b)
    ids = [c.submit1("slow", b"400", cache=CACHE) for _ in range(4)]
    got = c.wait_results(ids, 10)
    assert len(got) == 4 and all(r["status"] == "ok" for r in got.values()), got
    assert sum(1 for r in got.values() if r.get("cached")) == 3, got
    st = b.stats()
    s = svc(st, "slow")
    assert s["coalesced"] == 3 and s["completed"] == 4, s
    assert sum(w["done"] for w in st["workers"] if w["service"] == "slow") == 1


def test_failure_is_not_stored_and_waiters_run(yard, redis):  # noqa: F811
    b = yard.broker("--breaker", "enabled=false")
    start_cache(yard, b, redis)
    yard.worker(b, "fail", "fail", capacity=4)
    c = yard.client(b)
    ids = [c.submit1("fail", b"x", cache=CACHE) for _ in range(3)]
    got = c.wait_results(ids, 10)
    assert all(r["status"] == "error" and not r.get("cached")
               for r in got.values()), got
    st = b.stats()
    assert sum(w["done"] for w in st["workers"] if w["service"] == "fail") == 3
    # Nothing was stored: the next one runs too.
    r = c.call("fail", b"x", cache=CACHE)
    assert r["status"] == "error" and not r.get("cached"), r


def test_bad_policy_is_refused(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    for bad in ({"ttl_ms": "soon"}, {"key": ["a"], "exclude": ["b"]},
                {"tags": [""]}):
        r = c.call("echo", b"x", cache=bad)
        assert r["status"] == "invalid", (bad, r)
        assert "cache policy" in r["error"], r
    # Fields of a payload that is not a map.
    r = c.call("echo", b"plain", cache={"key": ["a"]})
    assert r["status"] == "invalid" and "cache policy" in r["error"], r
    assert c.call("echo", b"fine")["status"] == "ok"


def test_without_cache_worker_tasks_still_run(yard, redis):  # noqa: F811
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    r1 = c.call("echo", b"a", cache=CACHE)
    r2 = c.call("echo", b"a", cache=CACHE)
    assert r1["status"] == r2["status"] == "ok"
    assert not r1.get("cached") and not r2.get("cached")
    assert b.stats()["cache"]["bypassed"] >= 2
    # yard.cache comes, serves, and goes: tasks keep running.
    cache = start_cache(yard, b, redis)
    assert not c.call("echo", b"b", cache=CACHE).get("cached")
    stored(b, 2)
    assert c.call("echo", b"b", cache=CACHE).get("cached") is True
    cache.signal(9)
    t0 = time.monotonic()
    r = c.call("echo", b"c", cache=CACHE, timeout=15)
    assert r["status"] == "ok" and not r.get("cached"), r
    assert time.monotonic() - t0 < 10


def test_yard_stats_shows_the_cache(yard, redis):  # noqa: F811
    b = yard.broker()
    p = yard.cli(b, ["stats", "--json"])
    assert p.returncode == 0 and "yard_cache" not in json.loads(p.stdout)
    start_cache(yard, b, redis)
    yard.worker(b, "echo", "echo")
    c = yard.client(b)
    c.call("echo", b"s", cache=CACHE)
    stored(b, 2)
    c.call("echo", b"s", cache=CACHE)
    p = yard.cli(b, ["stats", "--json"])
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    yc = st["yard_cache"]
    assert yc["hits"] >= 1 and yc["l1"]["entries"] >= 1, yc
    assert st["services"]["echo"]["cache_hits"] == 1
    p = yard.cli(b, ["stats"])
    assert p.returncode == 0 and b"CACHE" in p.stdout, p.stdout


def test_cli_asks_for_caching(yard, redis):  # noqa: F811
    """The C client's cache policy, through `yard submit` and `yard batch`:
    the second identical task is answered from the cache, a tag given with
    --cache-tag invalidates it, and --cache-key keys on one field only."""
    b = yard.broker()
    start_cache(yard, b, redis)
    yard.worker(b, "echo", "echo")
    p = yard.cli(b, ["submit", "--cache-ttl", "60000", "--cache-tag", "docs",
                     "echo", "hello"])
    assert p.returncode == 0 and p.stdout == b"hello\n", p.stderr
    stored(b, 2)
    p = yard.cli(b, ["batch", "--cache", "--cache-tag", "docs",
                     "echo"], input=b"hello\nother\n")
    assert p.returncode == 0, p.stderr
    lines = sorted((json.loads(x) for x in p.stdout.splitlines()),
                   key=lambda r: r["index"])
    assert [r["cached"] for r in lines] == [True, False], lines
    assert lines[0]["payload"] == "hello"
    e = svc(b.stats(), "echo")
    assert e["cache_hits"] == 1 and e["cache_misses"] == 2, e
    # Invalidate the tag: the next one runs again.
    stored(b, 4)
    p = yard.cli(b, ["cache", "invalidate-tag", "docs"])
    assert p.returncode == 0, p.stderr
    p = yard.cli(b, ["batch", "--cache", "echo"], input=b"hello\n")
    assert json.loads(p.stdout)["cached"] is False, p.stdout
    # --cache-key: only "prompt" counts, so two payloads that differ in
    # another field share one cached result.
    a = mp({"prompt": "hi", "request_id": "1"})
    z = mp({"request_id": "2", "prompt": "hi"})
    stored(b, 6)
    p = yard.cli(b, ["submit", "--cache-key", "prompt", "echo", "-"], input=a)
    assert p.returncode == 0 and p.stdout == a + b"\n", p.stderr
    stored(b, 8)
    before = svc(b.stats(), "echo")["cache_hits"]
    p = yard.cli(b, ["submit", "--cache-key", "prompt", "echo", "-"], input=z)
    assert p.returncode == 0 and p.stdout == a + b"\n", p.stdout
    assert svc(b.stats(), "echo")["cache_hits"] == before + 1


def test_cli_refuses_bad_cache_flags(yard):
    b = yard.broker()
    for args, why in (
            (["--cache-ttl", "0"], "--cache-ttl"),
            (["--cache-ttl", "86400001"], "--cache-ttl"),
            (["--cache-tag", ""], "--cache-tag"),
            (["--cache-key", "x" * 129], "--cache-key"),
            (["--cache-key", "a", "--cache-exclude", "b"], "do not go"),
    ):
        p = yard.cli(b, ["submit"] + args + ["echo", "x"])
        assert p.returncode == 2, (args, p.stderr)
        assert why.encode() in p.stderr, (args, p.stderr)
    p = yard.cli(b, ["submit"] + sum((["--cache-tag", "t%d" % i]
                                      for i in range(17)), []) + ["echo", "x"])
    assert p.returncode == 2 and b"at most 16" in p.stderr, p.stderr
