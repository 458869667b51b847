"""yard-health end to end: a real yard-broker, yard-worker, yard-cache and
redis-server, and the yard-health process under test, driven over HTTP by a
real client (Debian's /usr/bin/curl) on loopback ports.

Covered: GET /v1/health (no key needed; healthy, warning, critical and the
HTTP status of each; broker down, tasks queued without workers, an open
breaker, Redis down, a worker killed without goodbye until it is replaced or
the lost window passes), API-key authentication (flag file, environment,
the flag winning), /v1/workers, /v1/metrics/performance, the Prometheus
text of /metrics (parsed with prometheus_client's own parser), the breaker
endpoints, the cache endpoints against a real yard-cache, the SSE event
stream (filtered by type prefixes), error answers (404, 405, 400, 413, 503),
bad flags and SIGTERM.

Every wait is a bounded poll of the HTTP API or of the broker's stats, never
a bare sleep; every process (yard-health, the curl of a stream included) is
started through the yard fixture, which stops it by its PID.
"""

import json
import os
import signal
import subprocess
import time

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import binary, free_port, rss_kib
from test_cache import redis, start_cache, wait_ready  # noqa: F401 (fixture)

CURL = "/usr/bin/curl"
KEY = "k3y-" + os.urandom(6).hex()
JSON_CT = "application/json"
STATUSES = ("healthy", "warning", "critical")


# ---- HTTP through curl --------------------------------------------------


class Resp:
    def __init__(self, argv, status, ctype, body, rc, err):
        self.argv = argv
        self.status = status
        self.ctype = ctype
        self.body = body
        self.rc = rc
        self.err = err

    def __repr__(self):
        return "<HTTP %s %r %r (curl rc %d %r)>" % (
            self.status, self.ctype, self.body[:600], self.rc, self.err[-300:])

    def json(self):
        assert self.ctype.split(";")[0].strip() == JSON_CT, self
        try:
            return json.loads(self.body)
        except ValueError:
            pytest.fail("not JSON: %r" % (self,))


def http(h, path, method="GET", key=None, body=None, ctype=JSON_CT,
         max_time=10.0, headers=()):
    """One request with curl; returns the status, Content-Type and body.
    A status of 0 means no HTTP answer at all."""
    argv = [CURL, "-s", "-S", "-o", "-", "-w", "\n%{http_code} %{content_type}",
            "--max-time", "%g" % max_time, "-H", "Expect:"]
    if method != "GET":
        argv += ["-X", method]
    if key is not None:
        argv += ["-H", "X-API-Key: " + key]
    for hd in headers:
        argv += ["-H", hd]
    if body is not None:
        argv += ["-H", "Content-Type: " + ctype, "--data-binary", "@-"]
    elif method == "POST":
        argv += ["--data-binary", ""]  # Content-Length: 0
    argv.append(h.url + path)
    try:
        p = subprocess.run(argv, input=body if body is not None else b"",
                           capture_output=True, timeout=max_time + 10)
    except subprocess.TimeoutExpired:
        pytest.fail("curl %s %s did not finish" % (method, path))
    out, _, tail = p.stdout.rpartition(b"\n")
    code, _, ct = tail.decode(errors="replace").partition(" ")
    return Resp(argv, int(code) if code.isdigit() else 0, ct.strip(), out,
                p.returncode, p.stderr.decode(errors="replace"))


def ok_json(h, path, method="GET", key=None, body=None):
    r = http(h, path, method, key, body)
    assert r.status == 200, (method, path, r)
    return r.json()


def assert_error(r, status, code):
    assert r.status == status, (status, r)
    j = r.json()
    assert j.get("error") == code, (code, r)
    assert isinstance(j.get("message"), str) and j["message"], r
    return j


def poll(fn, pred, timeout, what):
    """Calls fn until pred(value) holds; returns the value. KeyError and the
    like count as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        try:
            if pred(last):
                return last
        except (KeyError, IndexError, TypeError):
            pass
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s; last: %r"
                        % (timeout, what, last))
        time.sleep(0.05)


# ---- /v1/health ------------------------------------------------------------


def health(h):
    """GET /v1/health (never with a key): (response, body), the shape and
    the HTTP status checked against the status."""
    r = http(h, "/v1/health")
    assert r.status in (200, 503), r
    j = r.json()
    check_health_shape(j)
    assert r.status == (503 if j["status"] == "critical" else 200), r
    return r, j


def check_health_shape(j):
    assert j["status"] in STATUSES, j
    assert isinstance(j["reasons"], list), j
    assert all(isinstance(x, str) and x for x in j["reasons"]), j
    assert isinstance(j["checked_at_ms"], int) and j["checked_at_ms"] > 0, j
    ch = j["checks"]
    assert isinstance(ch["broker"]["ok"], bool), j
    assert isinstance(ch["broker"]["latency_us"], int), j
    assert ch["broker"]["latency_us"] >= 0, j
    for k in ("redis", "cache"):
        assert ch[k] is None or isinstance(ch[k]["ok"], bool), j
    if j["status"] == "healthy":
        assert j["reasons"] == [], j
    else:
        assert j["reasons"], j


def wait_status(h, status, timeout=10.0, pred=None):
    def good(rj):
        return rj[1]["status"] == status and (pred is None or pred(rj[1]))
    return poll(lambda: health(h), good, timeout,
                "health %s%s" % (status, "" if pred is None else " (and more)"))


def names(reasons, word):
    return [x for x in reasons if word.lower() in x.lower()]


# ---- /metrics --------------------------------------------------------------


def metrics(h, key=None):
    """GET /metrics parsed with prometheus_client: {family name: family}.
    Checks the content type, that every family has a TYPE and a HELP and
    that no family is split in two."""
    r = http(h, "/metrics", key=key)
    assert r.status == 200, r
    ct = [x.strip() for x in r.ctype.split(";")]
    assert ct[0] == "text/plain" and "version=0.0.4" in ct, r
    text = r.body.decode()
    fams = list(text_string_to_metric_families(text))
    seen = [f.name for f in fams]
    assert len(seen) == len(set(seen)), "a family in two pieces: %r" % seen
    for f in fams:
        assert f.type in ("counter", "gauge", "histogram", "summary"), \
            "family %s has no TYPE (%s):\n%s" % (f.name, f.type, text)
        assert f.documentation, "family %s has no HELP:\n%s" % (f.name, text)
    return {f.name: f for f in fams}


def samples(fams, family, sample=None, **labels):
    """Samples of a family (by sample name, default the family's own name
    plus _total for a counter) whose labels include labels."""
    f = fams[family]
    if sample is None:
        sample = family + "_total" if f.type == "counter" else family
    return [s for s in f.samples if s.name == sample
            and all(s.labels.get(k) == v for k, v in labels.items())]


def opt_value(fams, family, **labels):
    """value(), or None while the family or that sample is not there (for
    polls)."""
    if family not in fams:
        return None
    got = [s for s in samples(fams, family, **labels)
           if set(s.labels) == set(labels)]
    return got[0].value if len(got) == 1 else None


def value(fams, family, **labels):
    """The single value of a family's sample with exactly these labels
    among its own (a family may have more labels; they must be given)."""
    got = [s for s in samples(fams, family, **labels)
           if set(s.labels) == set(labels)]
    assert len(got) == 1, (family, labels, fams[family].samples)
    return got[0].value


# ---- the SSE stream ----------------------------------------------------------


class Stream:
    """curl -N on the event stream, started through the yard fixture (so it
    is stopped by its PID at teardown); its stdout goes to a file that the
    test reads while tasks run."""

    _n = 0

    def __init__(self, yard, h, query="", key=None, max_time=120):
        Stream._n += 1
        self.hdr_path = yard.logdir / ("sse-%d.headers" % Stream._n)
        argv = [CURL, "-s", "-S", "-N", "--max-time", str(max_time),
                "-D", str(self.hdr_path)]
        if key is not None:
            argv += ["-H", "X-API-Key: " + key]
        argv.append(h.url + "/v1/events/stream" + query)
        self.proc = yard.spawn("curl-sse", argv)

    def headers(self):
        try:
            return self.hdr_path.read_text(errors="replace").replace("\r\n", "\n")
        except OSError:
            return ""

    def wait_open(self, timeout=5.0):
        """Waits for the response head; returns (status, content-type)."""
        def head():
            t = self.headers()
            return t if "\n\n" in t else None
        t = poll(head, lambda t: t is not None, timeout, "the stream's response head")
        lines = t.split("\n")
        status = int(lines[0].split()[1])
        ct = ""
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-type":
                ct = v.strip()
        return status, ct

    def text(self):
        return self.proc.stdout_text().replace("\r\n", "\n")

    def frames(self):
        """Complete frames so far: [{"id", "event", "data"(parsed)}], and the
        number of comment lines."""
        blocks = self.text().split("\n\n")[:-1]  # the last one may be partial
        out = []
        comments = 0
        for blk in blocks:
            f = {}
            for ln in blk.split("\n"):
                if not ln:
                    continue
                if ln.startswith(":"):
                    comments += 1
                    continue
                k, _, v = ln.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "data":
                    f["data"] = f["data"] + "\n" + v if "data" in f else v
                else:
                    assert k not in f, "field %s twice in a frame: %r" % (k, blk)
                    f[k] = v
            if f:
                assert "data" in f, "frame without data: %r" % blk
                try:
                    f["data"] = json.loads(f["data"])
                except ValueError:
                    pytest.fail("frame data is not JSON: %r" % blk)
                out.append(f)
        return out, comments

    def wait_frame(self, pred, timeout, what):
        return poll(lambda: [f for f in self.frames()[0] if pred(f)],
                    lambda fs: len(fs) > 0, timeout, what)[0]


def fence(c, s, service, payload=b"p", timeout=10.0):
    """Submits tasks to service (one every 0.3 s) until the stream shows an
    event about one of them; returns that task's id. Proves the stream is
    live; the stream keeps the broker's order, so anything published
    before that event is in the stream by then."""
    deadline = time.monotonic() + timeout
    ids = []
    while True:
        ids.append(c.submit1(service, payload))
        t_end = min(deadline, time.monotonic() + 0.3)
        while True:
            c.pump(0)
            for f in s.frames()[0]:
                p = f["data"].get("payload")
                if isinstance(p, dict) and p.get("id") in ids:
                    return p["id"]
            if time.monotonic() >= t_end:
                break
            time.sleep(0.03)
        if time.monotonic() >= deadline:
            pytest.fail("no event of the %d task(s) to %r in the stream within %.0fs;"
                        " stream so far:\n%s" % (len(ids), service, timeout, s.text()[-3000:]))


# ============================================================================
# 1. /v1/health: healthy without a key; critical
# ============================================================================


def test_health_needs_no_key_and_is_healthy(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    h = yard.health(b, env_extra={"YARD_API_KEY": KEY})
    r, j = wait_status(h, "healthy")
    assert r.status == 200 and r.ctype.startswith(JSON_CT), r
    assert j["reasons"] == [], j
    assert j["checks"]["broker"]["ok"] is True, j
    # No --redis, no yard.cache worker: both null.
    assert j["checks"]["redis"] is None and j["checks"]["cache"] is None, j
    # The key is not needed here, but an endpoint behind it does need it.
    assert http(h, "/v1/workers").status == 401
    # Checked again and again (every 200 ms): checked_at_ms moves on.
    first = j["checked_at_ms"]
    poll(lambda: health(h)[1], lambda j: j["checked_at_ms"] > first, 5,
         "a newer check than %d" % first)


def test_health_critical_when_no_broker_answers(yard):
    # Nothing listens on these ports.
    h = yard.health(None, "--broker", "tcp://127.0.0.1:%d" % free_port(),
                    "--events", "tcp://127.0.0.1:%d" % free_port())
    r, j = wait_status(h, "critical", 10)
    assert r.status == 503, r
    assert j["checks"]["broker"]["ok"] is False, j
    assert j["reasons"], j
    fams = metrics(h)
    assert value(fams, "yard_up") == 0
    assert value(fams, "yard_health_status") == 2
    assert h.alive(), "yard-health exited while the broker was down"
    # SIGTERM while the broker is down: exits 0 all the same.
    h.signal(signal.SIGTERM)
    rc = h.wait(5)
    assert rc == 0, (rc, h.stderr_tail())


def test_health_critical_when_tasks_queue_without_workers(yard):
    b = yard.broker()
    h = yard.health(b)
    wait_status(h, "healthy")
    c = yard.client(b)
    tid = c.submit1("orphan", b"x", timeout_ms=60000)
    b.wait_stats(lambda st: st["services"]["orphan"]["queued"] == 1, 5,
                 "the orphan task queued")
    r, j = wait_status(h, "critical", 5)
    assert r.status == 503, r
    assert names(j["reasons"], "orphan"), j
    # A worker comes: the task runs, nothing waits, healthy again.
    yard.worker(b, "orphan", "echo")
    res = c.wait_result(tid, 10)
    assert res is not None and res["status"] == "ok", res
    r, j = wait_status(h, "healthy", 5)
    assert r.status == 200, r


# ============================================================================
# 2. Authentication
# ============================================================================

GUARDED = ["/v1/workers", "/metrics", "/v1/metrics/performance",
           "/v1/breakers", "/v1/cache/stats"]


def assert_guarded(h, good, bad):
    for path in GUARDED:
        assert_error(http(h, path), 401, "unauthorized")
        for k in bad:
            assert_error(http(h, path, key=k), 401, "unauthorized")
    # The stream: refused at once (a JSON answer, not a stream).
    for k in [None] + list(bad):
        r = http(h, "/v1/events/stream", key=k, max_time=5)
        assert_error(r, 401, "unauthorized")
    # POST and DELETE endpoints are guarded too (401 before anything else).
    assert_error(http(h, "/v1/cache/clear", "POST"), 401, "unauthorized")
    assert_error(http(h, "/v1/breakers/echo/reset", "POST", key=bad[0]),
                 401, "unauthorized")
    assert_error(http(h, "/v1/cache/tag/t", "DELETE"), 401, "unauthorized")
    # With the key.
    assert "workers" in ok_json(h, "/v1/workers", key=good)
    assert "worker_pool" in ok_json(h, "/v1/metrics/performance", key=good)
    assert "breakers" in ok_json(h, "/v1/breakers", key=good)
    assert value(metrics(h, key=good), "yard_up") == 1
    r = http(h, "/v1/events/stream", key=good, max_time=1.0)
    assert r.status == 200 and r.ctype.startswith("text/event-stream"), r
    assert r.rc == 28, "the stream ended by itself: %r" % (r,)  # curl's timeout
    # /v1/health never needs it, and a wrong one does not matter there.
    assert health(h)[0].status == 200


def test_auth_key_from_file_env_and_flag_wins(yard, tmp_path):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    keyfile = tmp_path / "api.key"
    keyfile.write_text(KEY + "\n")  # the trailing newline is not the key's

    # --api-key-file; YARD_API_KEY set too, but the flag wins.
    h = yard.health(b, "--api-key-file", str(keyfile),
                    env_extra={"YARD_API_KEY": "env-" + KEY})
    wait_status(h, "healthy")
    assert_guarded(h, KEY, ["wrong", "env-" + KEY, KEY[:-1], KEY + "x", KEY.upper()])

    # YARD_API_KEY alone.
    h2 = yard.health(b, env_extra={"YARD_API_KEY": "env-" + KEY})
    wait_status(h2, "healthy")
    assert_guarded(h2, "env-" + KEY, ["wrong", KEY])

    # YARD_API_KEY_FILE.
    h3 = yard.health(b, env_extra={"YARD_API_KEY_FILE": str(keyfile)})
    wait_status(h3, "healthy")
    assert_guarded(h3, KEY, ["wrong"])

    # No key configured: no authentication.
    h4 = yard.health(b)
    assert "workers" in ok_json(h4, "/v1/workers")
    assert "workers" in ok_json(h4, "/v1/workers", key="anything")
    assert value(metrics(h4), "yard_up") == 1


# ============================================================================
# 3. /v1/workers
# ============================================================================


def test_workers_lists_workers_with_their_fields(yard):
    b = yard.broker()
    wa = yard.worker(b, "echo", "echo", capacity=4, extra=("--name", "echo-a"))
    wb = yard.worker(b, "echo", "echo", capacity=3, extra=("--name", "echo-b"))
    slow = yard.worker(b, "slow", "sleep", capacity=2, extra=("--name", "slow-1"))
    h = yard.health(b, env_extra={"YARD_API_KEY": KEY})
    c = yard.client(b)
    n = 12
    ids = [c.next_id("w") for _ in range(n)]
    c.submit([c.task(i, "echo", b"x%d" % k) for k, i in enumerate(ids)])
    got = c.wait_results(ids, 10)
    assert len(got) == n and all(r["status"] == "ok" for r in got.values()), got

    def echo_done(j):
        return sum(w["done"] for w in j["workers"] if w["service"] == "echo")
    j = poll(lambda: ok_json(h, "/v1/workers", key=KEY),
             lambda j: echo_done(j) == n, 5, "/v1/workers done to add up to %d" % n)

    ws = j["workers"]
    for w in ws:
        assert isinstance(w["service"], str) and w["service"], w
        assert isinstance(w["id"], str) and w["id"], w
        assert isinstance(w["name"], str), w
        assert isinstance(w["pid"], int) and w["pid"] > 0, w
        assert w["status"] in ("idle", "busy", "full"), w
        for k in ("capacity", "in_flight", "done", "last_heartbeat_ms"):
            assert isinstance(w[k], int) and w[k] >= 0, (k, w)
        assert w["capacity"] >= 1 and w["in_flight"] <= w["capacity"], w
        assert w["last_heartbeat_ms"] < 5000, w  # lost after 3 s of silence
        lat = w["latency_us"]
        assert isinstance(lat["p50"], int) and isinstance(lat["p99"], int), w
        assert 0 <= lat["p50"] <= lat["p99"], w
    assert len({w["id"] for w in ws}) == len(ws), ws

    echo = {w["name"]: w for w in ws if w["service"] == "echo"}
    assert set(echo) == {"echo-a", "echo-b"}, ws
    assert echo["echo-a"]["pid"] == wa.pid and echo["echo-b"]["pid"] == wb.pid, ws
    assert echo["echo-a"]["capacity"] == 4 and echo["echo-b"]["capacity"] == 3, ws
    for w in echo.values():
        assert w["in_flight"] == 0 and w["status"] == "idle", w
    # The same workers, ids and counts as the broker's own stats.
    bw = {w["id"]: w for w in b.stats()["workers"] if w["service"] == "echo"}
    assert {w["id"]: w["done"] for w in echo.values()} == \
        {i: w["done"] for i, w in bw.items()}, (echo, bw)
    # yard-health is a worker itself.
    me = [w for w in ws if w["service"] == "yard.health"]
    assert len(me) == 1 and me[0]["pid"] == h.pid, ws
    assert [w["pid"] for w in ws if w["service"] == "slow"] == [slow.pid], ws

    # busy (some of its capacity held), then full (all of it).
    t1 = c.submit1("slow", b"2500")
    poll(lambda: ok_json(h, "/v1/workers", key=KEY),
         lambda j: [(w["status"], w["in_flight"]) for w in j["workers"]
                    if w["service"] == "slow"] == [("busy", 1)],
         5, "the slow worker busy with 1 task")
    t2 = c.submit1("slow", b"2500")
    poll(lambda: ok_json(h, "/v1/workers", key=KEY),
         lambda j: [(w["status"], w["in_flight"]) for w in j["workers"]
                    if w["service"] == "slow"] == [("full", 2)],
         5, "the slow worker full (2 of 2)")
    got = c.wait_results([t1, t2], 10)
    assert len(got) == 2 and all(r["status"] == "ok" for r in got.values()), got


# ============================================================================
# 4. /v1/metrics/performance
# ============================================================================


def test_performance_metrics(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo", capacity=5)
    h = yard.health(b, env_extra={"YARD_API_KEY": KEY})
    c = yard.client(b)
    n = 9
    for i in range(n):
        r = c.call("echo", b"p%d" % i)
        assert r is not None and r["status"] == "ok", r
    p = poll(lambda: ok_json(h, "/v1/metrics/performance", key=KEY),
             lambda p: p["services"]["echo"]["completed"] == n, 5,
             "services.echo.completed == %d" % n)
    st = b.stats()

    e = p["services"]["echo"]
    assert e["submitted"] == n and e["completed"] == n and e["failed"] == 0, e
    assert e["queued"] == 0 and e["in_flight"] == 0 and e["workers"] == 1, e

    wp = p["worker_pool"]
    assert wp["workers"] == st["total"]["workers"], (wp, st["total"])
    assert wp["capacity"] == sum(w["capacity"] for w in st["workers"]), (wp, st["workers"])
    assert wp["in_flight"] == 0 and wp["queued"] == 0, wp
    assert isinstance(wp["utilization"], (int, float)), wp
    assert wp["utilization"] == 0, wp  # nothing in flight

    ev = p["event_bus"]
    for k in ("published", "delivered", "dropped", "subscribers"):
        assert isinstance(ev[k], int) and ev[k] >= 0, ev
    assert ev["published"] >= 1, ev  # system.startup, worker.joined at least
    assert ev["subscribers"] >= 1, ev  # yard-health listens for worker.lost

    assert isinstance(p["cache"]["broker"]["flights"], int), p["cache"]
    assert p["cache"]["yard_cache"] is None, p["cache"]  # no yard-cache runs

    assert p["breakers"]["echo"]["state"] == "closed", p["breakers"]

    # processes: the broker, the echo worker and yard-health itself, each
    # with its loop, memory, objects, uptime and version, and its ping.
    p = poll(lambda: ok_json(h, "/v1/metrics/performance", key=KEY),
             lambda p: len(p["processes"]) == 3
             and all(x["ping"]["answered"] and x.get("loop") for x in p["processes"]),
             5, "three processes that answered a ping")
    procs = {x["kind"]: x for x in p["processes"]}
    assert set(procs) == {"broker", "worker", "health"}, p["processes"]
    pids = {"broker": b.proc.pid, "health": h.pid, "worker": procs["worker"]["pid"]}
    for kind, pr in procs.items():
        assert pr["pid"] == pids[kind], pr
        assert pr["version"] == st["broker"]["version"], pr
        assert isinstance(pr["uptime_ms"], int) and pr["uptime_ms"] >= 0, pr
        real = rss_kib(pids[kind]) * 1024
        assert real / 3 <= pr["memory"]["rss_bytes"] <= real * 3, (pr, real)
        assert pr["memory"]["rss_peak_bytes"] >= pr["memory"]["rss_bytes"] / 2, pr
        assert pr["loop"]["iterations"] > 0, pr
        assert pr["loop"]["stalls"] == 0 and pr["flags"] == [], pr
        assert isinstance(pr["ping"]["rtt_us"], int), pr
    assert procs["worker"]["service"] == "echo", procs
    assert procs["worker"]["objects"]["events_waiting"] == 0, procs
    assert procs["broker"]["objects"]["tasks"] == 0, procs
    assert procs["broker"]["objects"]["sessions"] >= 3, procs
    assert "sse_clients" in procs["health"]["objects"], procs
    assert p["http"]["requests"] >= 1, p["http"]

    # Utilization while the pool is busy: in_flight / capacity of the pool
    # (echo's 5, slow's 2 and yard.health's own).
    yard.worker(b, "slow", "sleep", capacity=2)
    ids = [c.submit1("slow", b"2500") for _ in range(2)]
    p = poll(lambda: ok_json(h, "/v1/metrics/performance", key=KEY),
             lambda p: p["worker_pool"]["in_flight"] == 2, 5, "2 tasks in flight")
    wp = p["worker_pool"]
    assert 0 < wp["utilization"] <= 1, wp
    assert abs(wp["utilization"] - 2 / wp["capacity"]) < 0.01, wp
    assert p["services"]["slow"]["in_flight"] == 2, p["services"]
    got = c.wait_results(ids, 10)
    assert len(got) == 2, got


# ============================================================================
# 5. /metrics (Prometheus text)
# ============================================================================

FAMILIES = {
    "yard_up": "gauge",
    "yard_health_status": "gauge",
    "yard_tasks_submitted": "counter",
    "yard_tasks_completed": "counter",
    "yard_tasks_failed": "counter",
    "yard_queue_depth": "gauge",
    "yard_tasks_in_flight": "gauge",
    "yard_workers": "gauge",
    "yard_breaker_state": "gauge",
    "yard_events_published": "counter",
    "yard_event_subscribers": "gauge",
    "yard_broker_rss_bytes": "gauge",
    "yard_task_latency_us": "gauge",
}


def test_prometheus_metrics(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    h = yard.health(b, env_extra={"YARD_API_KEY": KEY})
    c = yard.client(b)
    n = 6
    for i in range(n):
        r = c.call("echo", b"m%d" % i)
        assert r is not None and r["status"] == "ok", r
    fams = poll(lambda: metrics(h, KEY),
                lambda f: opt_value(f, "yard_tasks_completed", service="echo") == n,
                5, 'yard_tasks_completed_total{service="echo"} == %d' % n)
    for name, typ in FAMILIES.items():
        assert name in fams, "no family %s in %s" % (name, sorted(fams))
        assert fams[name].type == typ, (name, fams[name].type)
    # Counters' samples carry the _total suffix.
    assert samples(fams, "yard_tasks_completed", "yard_tasks_completed_total")

    assert value(fams, "yard_up") == 1
    assert value(fams, "yard_health_status") == 0
    assert value(fams, "yard_tasks_submitted", service="echo") == n
    assert value(fams, "yard_tasks_failed", service="echo") == 0
    assert value(fams, "yard_queue_depth", service="echo") == 0
    assert value(fams, "yard_tasks_in_flight", service="echo") == 0
    assert value(fams, "yard_workers", service="echo") == 1
    assert value(fams, "yard_breaker_state", service="echo", state="closed") == 1
    assert value(fams, "yard_breaker_state", service="echo", state="open") == 0
    assert value(fams, "yard_breaker_state", service="echo", state="half_open") == 0
    assert sum(s.value for s in samples(fams, "yard_events_published")) >= 1
    assert value(fams, "yard_event_subscribers") >= 1
    rss = value(fams, "yard_broker_rss_bytes")
    real = rss_kib(b.proc.pid) * 1024
    assert real / 3 <= rss <= real * 3, (rss, real)
    p50 = value(fams, "yard_task_latency_us", service="echo", quantile="0.5")
    p99 = value(fams, "yard_task_latency_us", service="echo", quantile="0.99")
    assert 0 < p50 <= p99, (p50, p99)
    # No yard-cache runs: no cache families.
    assert "yard_cache_hits" not in fams and "yard_cache_hit_rate" not in fams

    # A failure counts under its own service.
    yard.worker(b, "bad", "fail")
    r = c.call("bad", b"x")
    assert r is not None and r["status"] == "error", r
    fams = poll(lambda: metrics(h, KEY),
                lambda f: opt_value(f, "yard_tasks_failed", service="bad") == 1,
                5, 'yard_tasks_failed_total{service="bad"} == 1')
    assert value(fams, "yard_tasks_completed", service="echo") == n


# ============================================================================
# 6. Breakers
# ============================================================================


def breaker_show(b, service):
    import yardwire as yw
    r = b.admin().call(yw.ADMIN_SERVICE, b"breaker show " + service.encode(), timeout=5)
    assert r is not None and r["status"] == "ok", r
    return json.loads(yw.as_bytes(r["payload"]).decode())


def test_breakers_open_warn_and_reset(yard):
    b = yard.broker("--breaker", "fail_threshold=1", "--breaker", "base_timeout_ms=60000",
                    "--breaker", "max_timeout_ms=60000")
    yard.worker(b, "payments", "fail")
    yard.worker(b, "echo", "echo")
    h = yard.health(b, env_extra={"YARD_API_KEY": KEY})
    c = yard.client(b)
    assert c.call("echo", b"x")["status"] == "ok"
    wait_status(h, "healthy")

    r = c.call("payments", b"x")
    assert r is not None and r["status"] == "error", r
    assert breaker_show(b, "payments")["state"] == "open"

    j = poll(lambda: ok_json(h, "/v1/breakers", key=KEY),
             lambda j: j["breakers"]["payments"]["state"] == "open", 5,
             "/v1/breakers: payments open")
    assert j["breakers"]["echo"]["state"] == "closed", j
    one = ok_json(h, "/v1/breakers/payments", key=KEY)
    assert one["service"] == "payments" and one["state"] == "open", one
    r, hj = wait_status(h, "warning", 5)
    assert r.status == 200, r
    assert names(hj["reasons"], "payments"), hj
    assert not names(hj["reasons"], "echo"), hj
    fams = metrics(h, KEY)
    assert value(fams, "yard_breaker_state", service="payments", state="open") == 1
    assert value(fams, "yard_breaker_state", service="payments", state="closed") == 0
    assert value(fams, "yard_health_status") == 1

    # Errors first: unknown breaker, wrong method.
    assert_error(http(h, "/v1/breakers/nosuch", key=KEY), 404, "not_found")
    assert_error(http(h, "/v1/breakers/nosuch/reset", "POST", key=KEY), 404, "not_found")
    assert_error(http(h, "/v1/breakers/payments/reset", key=KEY), 405,
                 "method_not_allowed")
    assert breaker_show(b, "payments")["state"] == "open"  # a GET did not reset it

    # Reset.
    res = ok_json(h, "/v1/breakers/payments/reset", "POST", key=KEY)
    assert res["service"] == "payments" and res["state"] == "closed", res
    assert breaker_show(b, "payments")["state"] == "closed"
    r, hj = wait_status(h, "healthy", 5)
    assert r.status == 200 and hj["reasons"] == [], hj
    one = ok_json(h, "/v1/breakers/payments", key=KEY)
    assert one["state"] == "closed", one


# ============================================================================
# 7. Cache endpoints, Redis check
# ============================================================================


def test_cache_endpoints(yard, redis):  # noqa: F811
    b = yard.broker()
    start_cache(yard, b, redis)
    wait_ready(yard.client(b), 1, 1)
    h = yard.health(b, env_extra={"YARD_API_KEY": KEY})

    def yc(*args):
        return yard.cli(b, ["cache"] + list(args))

    def hit(k, v):
        p = yc("get", k)
        assert p.returncode == 0 and p.stdout == v, (k, p)

    def miss(k):
        p = yc("get", k)
        assert p.returncode == 1 and p.stdout == b"", (k, p)

    for args in (["--tag", "red", "pa1", "v1"], ["--tag", "red", "pa2", "v2"],
                 ["pb1", "v3"], ["--tag", "blue", "pc1", "v4"], ["qx1", "v5"],
                 ["--tag", "red", "qy1", "v6"]):
        p = yc("set", *args)
        assert p.returncode == 0, (args, p)
    hit("pa1", b"v1")
    miss("zz")

    _, hj = wait_status(h, "healthy", 10,
                        pred=lambda j: j["checks"]["cache"] is not None
                        and j["checks"]["cache"]["ok"] is True)

    st = ok_json(h, "/v1/cache/stats", key=KEY)
    for k in ("l1", "l2", "hits", "gets"):
        assert k in st, st
    assert st["hits"] >= 1 and st["gets"] >= 2, st
    assert st["l2"]["connected"] is True, st

    # By tag: pa1, pa2, qy1.
    assert ok_json(h, "/v1/cache/tag/red", "DELETE", key=KEY) == {"deleted": 3}
    for k in ("pa1", "pa2", "qy1"):
        miss(k)
    hit("pb1", b"v3")
    assert ok_json(h, "/v1/cache/tag/nothing", "DELETE", key=KEY) == {"deleted": 0}

    # By glob: pb1, pc1 are what is left of p*.
    assert ok_json(h, "/v1/cache/invalidate", "DELETE", key=KEY,
                   body=b'{"pattern": "p*"}') == {"deleted": 2}
    miss("pb1")
    miss("pc1")
    hit("qx1", b"v5")

    # Bad bodies.
    for bad in (b'{"pattern": "q*"', b"not json", b'{"pattern": 3}', b"{}",
                b'["q*"]', b""):
        assert_error(http(h, "/v1/cache/invalidate", "DELETE", key=KEY, body=bad),
                     400, "bad_request")
    hit("qx1", b"v5")  # none of them deleted anything

    # Clear: qx1 is what is left.
    assert ok_json(h, "/v1/cache/clear", "POST", key=KEY) == {"deleted": 1}
    miss("qx1")

    # The cache families (hits so far: pa1, pb1, qx1 twice).
    def hits(f):
        return sum(s.value for s in samples(f, "yard_cache_hits"))
    fams = poll(lambda: metrics(h, KEY),
                lambda f: "yard_cache_hits" in f and hits(f) >= 4,
                5, "yard_cache_hits_total >= 4")
    assert fams["yard_cache_hits"].type == "counter"
    assert fams["yard_cache_misses"].type == "counter"
    assert sum(s.value for s in samples(fams, "yard_cache_misses")) >= 1
    assert fams["yard_cache_hit_rate"].type == "gauge"
    rates = samples(fams, "yard_cache_hit_rate")
    # Per tier or in all; the one of all tiers (or L1's) is above 0.
    assert rates and all(0 <= s.value <= 1 for s in rates), rates
    assert any(s.value > 0 for s in rates), rates

    perf = ok_json(h, "/v1/metrics/performance", key=KEY)
    assert isinstance(perf["cache"]["yard_cache"], dict), perf["cache"]


def test_cache_endpoints_unavailable_without_cache(yard):
    b = yard.broker()
    h = yard.health(b)
    _, j = wait_status(h, "healthy")
    assert j["checks"]["cache"] is None, j
    assert_error(http(h, "/v1/cache/stats"), 503, "unavailable")
    assert_error(http(h, "/v1/cache/clear", "POST"), 503, "unavailable")
    assert_error(http(h, "/v1/cache/tag/t", "DELETE"), 503, "unavailable")
    assert_error(http(h, "/v1/cache/invalidate", "DELETE", body=b'{"pattern": "x*"}'),
                 503, "unavailable")
    assert "yard_cache_hits" not in metrics(h)
    assert ok_json(h, "/v1/metrics/performance")["cache"]["yard_cache"] is None
    # Asking about a cache that is not there did not leave tasks waiting
    # for one (which would make the system critical): healthy throughout.
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        _, j = health(h)
        assert j["status"] == "healthy", j
        time.sleep(0.1)
    assert b.service_stats("yard.cache").get("queued", 0) == 0


def test_redis_check(yard, redis):  # noqa: F811
    b = yard.broker()
    h = yard.health(b, "--redis", redis.url)
    _, j = wait_status(h, "healthy", 10,
                       pred=lambda j: j["checks"]["redis"] is not None
                       and j["checks"]["redis"]["ok"] is True)
    redis.kill9()
    r, j = wait_status(h, "warning", 10)
    assert r.status == 200, r
    assert j["checks"]["redis"]["ok"] is False, j
    assert names(j["reasons"], "redis"), j
    assert j["checks"]["broker"]["ok"] is True, j
    assert value(metrics(h), "yard_health_status") == 1
    # Back on the same port: healthy again.
    redis.start()
    _, j = wait_status(h, "healthy", 10)
    assert j["checks"]["redis"]["ok"] is True, j


# ============================================================================
# 8. The SSE stream
# ============================================================================


def check_frame(f):
    d = f["data"]
    assert set(d) >= {"type", "source", "trace_id", "ts_us", "payload"}, f
    assert d["type"] == f["event"], f
    assert isinstance(d["ts_us"], int) and d["ts_us"] > 0, f
    assert f["id"].isdigit(), f


def test_sse_task_completed_stream(yard):
    b = yard.broker()
    yard.worker(b, "echo", "echo")
    yard.worker(b, "probe", "echo")
    h = yard.health(b, env_extra={"YARD_API_KEY": KEY})
    s = Stream(yard, h, "?type=task.completed", key=KEY)
    status, ct = s.wait_open()
    assert status == 200 and ct.startswith("text/event-stream"), (status, ct)
    c = yard.client(b)
    fence(c, s, "probe")

    ids = [c.submit1("echo", b"hello-%d" % i) for i in range(5)]
    got = c.wait_results(ids, 10)
    assert len(got) == 5 and all(r["status"] == "ok" for r in got.values()), got
    # A last probe: once its event is in, every echo event before it is too.
    last = fence(c, s, "probe")

    frames, _ = s.frames()
    for f in frames:
        check_frame(f)
        assert f["event"] == "task.completed", "not asked for: %r" % f
        assert f["data"]["source"] == "yard-broker", f
    echo = [f for f in frames if f["data"]["payload"]["service"] == "echo"]
    assert len(echo) == 5, [f["data"] for f in frames]
    assert sorted(f["data"]["payload"]["id"] for f in echo) == sorted(ids), echo
    seq = [int(f["id"]) for f in frames]
    assert seq == sorted(seq) and len(set(seq)) == len(seq), seq
    # The last probe's event came after every echo one.
    assert frames[-1]["data"]["payload"]["id"] == last, frames[-1]
    assert s.proc.alive(), "curl ended: the stream closed"


def test_sse_several_prefixes(yard):
    b = yard.broker("--breaker", "enabled=false")
    yard.worker(b, "bad", "fail")
    h = yard.health(b)
    s = Stream(yard, h, "?type=task.failed,worker.joined")
    status, ct = s.wait_open()
    assert status == 200 and ct.startswith("text/event-stream"), (status, ct)
    c = yard.client(b)
    fence(c, s, "bad")

    late = yard.worker(b, "late", "echo")
    r = c.call("late", b"x")
    assert r is not None and r["status"] == "ok", r
    fence(c, s, "bad")

    frames, _ = s.frames()
    types = set()
    for f in frames:
        check_frame(f)
        types.add(f["event"])
    assert types == {"task.failed", "worker.joined"}, types
    joined = [f for f in frames if f["event"] == "worker.joined"]
    assert len(joined) == 1, joined
    p = joined[0]["data"]["payload"]
    assert p["service"] == "late" and p["pid"] == late.pid, p
    failed = [f for f in frames if f["event"] == "task.failed"]
    assert all(f["data"]["payload"]["service"] == "bad" for f in failed), failed


# ============================================================================
# 9. A worker killed without goodbye
# ============================================================================


def test_killed_worker_warns_until_replaced(yard):
    b = yard.broker()
    w1 = yard.worker(b, "echo", "echo")
    yard.worker(b, "echo", "echo")
    yard.worker(b, "other", "echo")
    h = yard.health(b)
    wait_status(h, "healthy")
    w1.signal(signal.SIGKILL)
    assert w1.wait(5) is not None
    # The ping notices first (within a check); the broker drops the worker
    # after ~3 s of silence, and the lost worker keeps the warning.
    r, j = wait_status(h, "warning", 12)
    assert r.status == 200, r
    assert names(j["reasons"], "echo"), j
    assert not names(j["reasons"], "other"), j
    deadline = time.monotonic() + 10
    while b.service_stats("echo")["workers"] != 1:
        assert time.monotonic() < deadline, "the broker kept the dead worker"
        time.sleep(0.1)
    r, j = wait_status(h, "warning", 5,
                       pred=lambda j: any("lost" in x for x in j["reasons"]))
    assert names(j["reasons"], "echo") and not names(j["reasons"], "other"), j
    # Tasks still run on the other one; still a warning.
    c = yard.client(b)
    assert c.call("echo", b"x")["status"] == "ok"
    assert health(h)[1]["status"] == "warning"
    # A new echo worker joins: healthy again.
    yard.worker(b, "echo", "echo")
    r, j = wait_status(h, "healthy", 5)
    assert r.status == 200 and j["reasons"] == [], j


def test_lost_worker_warning_ends_after_the_lost_window(yard):
    b = yard.broker()
    w = yard.worker(b, "solo", "echo")
    h = yard.health(b, "--lost-window-ms", "2000")
    wait_status(h, "healthy")
    w.signal(signal.SIGKILL)
    assert w.wait(5) is not None
    _, j = wait_status(h, "warning", 12)
    assert names(j["reasons"], "solo"), j
    t0 = time.monotonic()
    # No worker of solo comes back; the window passes.
    _, j = wait_status(h, "healthy", 8)
    assert time.monotonic() - t0 >= 0.5, "the warning did not last"
    assert b.service_stats("solo")["workers"] == 0


# ============================================================================
# 9b. Every process: pings, loop stalls, memory growth
# ============================================================================


def proc_of(j, pid):
    for p in j["processes"]:
        if p["pid"] == pid:
            return p
    raise AssertionError("no process with pid %d in %r" % (pid, j["processes"]))


def performance(h):
    return ok_json(h, "/v1/metrics/performance")


def test_unresponsive_and_stalled_worker_flagged(yard):
    b = yard.broker()
    w = yard.worker(b, "echo", "echo", env_extra={"YARD_LOOP_STALL_MS": "200"})
    yard.worker(b, "other", "echo")
    h = yard.health(b, "--timeout-ms", "400", "--lost-window-ms", "4000")
    wait_status(h, "healthy")
    w.signal(signal.SIGSTOP)
    t_stop = time.monotonic()
    try:
        # The ping notices within a check (400 ms to answer).
        _, j = wait_status(h, "warning", 5,
                           pred=lambda j: names(j["reasons"], "did not answer a ping"))
        assert names(j["reasons"], "echo") and not names(j["reasons"], "other"), j
        p = poll(lambda: performance(h),
                 lambda p: "unresponsive" in proc_of(p, w.pid)["flags"], 5,
                 "the worker flagged unresponsive")
        assert proc_of(p, w.pid)["ping"] == {"answered": False, "rtt_us": None}, p
        fams = metrics(h)
        wid = proc_of(p, w.pid)["id"]
        assert value(fams, "yard_process_up", kind="worker", service="echo",
                     name=proc_of(p, w.pid)["name"], id=wid) == 0
        assert value(fams, "yard_process_flagged", kind="worker", service="echo",
                     name=proc_of(p, w.pid)["name"], id=wid, flag="unresponsive") == 1
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t_stop)))
    finally:
        w.signal(signal.SIGCONT)
    # Running again: it answers, and its report shows the stall.
    _, j = wait_status(h, "warning", 5,
                       pred=lambda j: names(j["reasons"], "event loop stalled")
                       and not names(j["reasons"], "did not answer"))
    assert names(j["reasons"], "echo"), j
    p = performance(h)
    pw = proc_of(p, w.pid)
    assert pw["flags"] == ["loop_stall"], pw
    assert pw["loop"]["stalls"] >= 1 and pw["loop"]["last_stall_us"] >= 200_000, pw
    fams = metrics(h)
    assert value(fams, "yard_process_loop_stalls", kind="worker", service="echo",
                 name=pw["name"], id=pw["id"]) >= 1
    assert value(fams, "yard_process_flagged", kind="worker", service="echo",
                 name=pw["name"], id=pw["id"], flag="loop_stall") == 1
    # /v1/workers carries the same flags.
    ws = ok_json(h, "/v1/workers")["workers"]
    assert [x["flags"] for x in ws if x["pid"] == w.pid] == [["loop_stall"]], ws
    # The stall is forgotten after the window.
    wait_status(h, "healthy", 8)


def test_stalled_broker_flagged(yard):
    b = yard.broker(env_extra={"YARD_LOOP_STALL_MS": "200"})
    yard.worker(b, "echo", "echo")
    h = yard.health(b, "--timeout-ms", "400", "--lost-window-ms", "5000")
    wait_status(h, "healthy")
    b.proc.signal(signal.SIGSTOP)
    try:
        wait_status(h, "critical", 5)  # the broker does not answer
    finally:
        time.sleep(0.5)
        b.proc.signal(signal.SIGCONT)
    _, j = wait_status(h, "warning", 8,
                       pred=lambda j: names(j["reasons"], "broker: event loop stalled"))
    p = performance(h)
    pb = proc_of(p, b.proc.pid)
    assert pb["kind"] == "broker" and pb["flags"] == ["loop_stall"], pb
    assert pb["loop"]["stalls"] >= 1, pb


def test_memory_growth_flagged(yard):
    b = yard.broker()
    cache = start_cache(yard, b, None, args=("--no-l2",))
    h = yard.health(b, "--mem-growth-mb", "16")
    wait_status(h, "healthy", 10)
    time.sleep(1.5)  # a baseline memory sample before it grows
    c = yard.client(b)
    blob = os.urandom(512 * 1024)
    for i in range(48):  # 24 MiB of values held in L1
        r = c.call("yard.cache", msgpack.packb({"op": "set", "key": "k%d" % i,
                                                "value": blob}, use_bin_type=True))
        assert r["status"] == "ok", r
    _, j = wait_status(h, "warning", 10,
                       pred=lambda j: names(j["reasons"], "memory grew"))
    assert names(j["reasons"], "yard.cache"), j
    # A check after the last set sees every entry.
    p = poll(lambda: performance(h),
             lambda p: proc_of(p, cache.pid)["objects"]["l1_entries"] == 48, 5,
             "48 entries in the cache's report")
    pc = proc_of(p, cache.pid)
    assert pc["kind"] == "cache" and "memory_growth" in pc["flags"], pc
    assert pc["memory"]["rss_growth_bytes"] >= 16 << 20, pc
    assert pc["objects"]["l1_entries"] == 48, pc
    assert pc["objects"]["l1_bytes"] >= 48 * 512 * 1024, pc
    fams = metrics(h)
    assert value(fams, "yard_process_memory_growth_bytes", kind="cache",
                 service="yard.cache", name=pc["name"], id=pc["id"]) >= 16 << 20


# ============================================================================
# 10. Errors, flags, SIGTERM
# ============================================================================


def test_http_errors(yard):
    b = yard.broker()
    # An L1-only yard-cache (no Redis), so bodies reach the checks.
    start_cache(yard, b, None, args=("--no-l2",))
    h = yard.health(b)
    wait_status(h, "healthy", 10, pred=lambda j: j["checks"]["cache"] is not None
                and j["checks"]["cache"]["ok"] is True)

    for path in ("/nope", "/v1/nope", "/v1", "/v1/workers/extra", "/metricsx"):
        assert_error(http(h, path), 404, "not_found")
    for method, path in (("DELETE", "/v1/workers"), ("POST", "/v1/health"),
                         ("PUT", "/metrics"), ("GET", "/v1/cache/clear"),
                         ("POST", "/v1/cache/stats"), ("GET", "/v1/cache/invalidate"),
                         ("DELETE", "/v1/metrics/performance")):
        assert_error(http(h, path, method), 405, "method_not_allowed")

    big = b'{"pattern": "' + b"a" * 69980 + b'"}'
    assert len(big) > 65536
    assert_error(http(h, "/v1/cache/invalidate", "DELETE", body=big), 413,
                 "payload_too_large")
    assert_error(http(h, "/v1/cache/invalidate", "DELETE", body=b'{"pattern": '),
                 400, "bad_request")
    assert_error(http(h, "/v1/cache/invalidate", "DELETE", body=b'{"pattern": null}'),
                 400, "bad_request")
    # A good one still works afterwards, on a fresh connection each time.
    assert ok_json(h, "/v1/cache/invalidate", "DELETE",
                   body=b'{"pattern": "none*"}') == {"deleted": 0}
    assert h.alive()
    assert health(h)[0].status == 200


def test_bad_flags_exit_2_and_sigterm_exits_0(yard):
    exe = binary("yard-health")
    port = free_port()
    base = [exe, "--http", "127.0.0.1:%d" % port, "--broker",
            "tcp://127.0.0.1:%d" % free_port(), "--events",
            "tcp://127.0.0.1:%d" % free_port()]
    for extra in (["--bogus"], ["--interval-ms", "abc"], ["--lost-window-ms", "x1"],
                  ["--broker"]):
        try:
            p = subprocess.run(base + extra, capture_output=True, timeout=10,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail("yard-health %s did not exit" % " ".join(extra))
        assert p.returncode == 2, (extra, p.returncode, p.stderr)
        assert p.stderr.strip(), (extra, "no message on stderr")

    b = yard.broker()
    h = yard.health(b)
    wait_status(h, "healthy")
    h.signal(signal.SIGTERM)
    rc = h.wait(5)
    assert rc == 0, (rc, h.stderr_tail())


def test_sigterm_while_starting_without_broker_exits_0(yard):
    """SIGTERM before the first check is done (it waits for a broker that
    is not there, up to its call deadline) still means a clean exit 0."""
    h = yard.health(None, "--broker", "tcp://127.0.0.1:%d" % free_port(),
                    "--events", "tcp://127.0.0.1:%d" % free_port(), wait=False)
    exe = os.path.realpath(binary("yard-health"))
    poll(lambda: os.path.realpath("/proc/%d/exe" % h.pid) if h.alive() else None,
         lambda e: e == exe, 5, "yard-health to be exec'd")
    time.sleep(0.5)  # into its start-up (the process's own set-up is done)
    assert h.alive(), h.stderr_tail()
    h.signal(signal.SIGTERM)
    rc = h.wait(5)
    assert rc == 0, (rc, h.stderr_tail())
