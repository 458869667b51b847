"""yard-bench runs end to end and its --json is what scripts rely on.

A short run (1 s per side, small memory and callgrind phases, the breaker
and event phases included, and the cache phase when redis-server is
installed): this checks the benchmark works, not how fast anything is;
figures come from make bench.
"""
import json
import os
import shutil
import subprocess

BIN = os.environ.get("YARD_BIN", "build/bin")
REDIS_SERVER = "/usr/bin/redis-server"


def test_bench_json_short_run():
    args = [os.path.join(BIN, "yard-bench"), "--json", "--duration", "1",
            "--rounds", "1", "--mem-tasks", "20000", "--callgrind-tasks",
            "1000"]
    if not shutil.which("valgrind"):
        args.append("--no-callgrind")
    out = subprocess.run(args, capture_output=True, timeout=240, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for side in ("yard", "proxy"):
        s = report[side]
        assert s["completed"] > 0
        assert s["tasks_per_s"] > 0
        assert 0 < s["p50_us"] <= s["p99_us"]
    assert report["ratio"]["throughput"] > 0
    assert report["latency"]["ratio_p50"] > 0
    # The event bus: 1 publisher to 1 and to 4 subscribers, both sides
    # lossless (the bench fails the run otherwise).
    assert report["config"]["event_window"] > 0
    events = report["events"]
    assert set(events) == {"1", "4"}
    for subs, ev in events.items():
        for side in ("yard", "proxy"):
            s = ev[side]
            assert s["events_per_s"] > 0
            assert s["deliveries_per_s"] >= s["events_per_s"] * int(subs)
            assert 0 < s["p50_us"] <= s["p99_us"]
        assert ev["ratio"] > 0
        assert len(ev["ratio_rounds"]) == 1
    brk = report["breaker"]
    for side in ("on", "off"):
        s = brk[side]
        assert s["completed"] > 0
        assert s["tasks_per_s"] > 0
        assert 0 < s["p50_us"] <= s["p99_us"]
    opened = brk["open"]
    assert opened["rejections"] > 0
    assert opened["rejections_per_s"] > 0
    assert 0 < opened["p50_us"] <= opened["p99_us"]
    assert brk["ratio_on_off"] > 0
    assert brk["ratio_rejections_to_tasks"] > 0
    assert report["memory"]["broker_tasks"] == 20000
    assert report["memory"]["bytes_per_task"] > 0
    if "--no-callgrind" not in args:
        assert report["callgrind"]["instructions_per_task"] > 0
    # The cache: L1 and L2 hits through Yard, a plain Redis GET; every
    # answer was checked by the bench (hit, value, tier), or it failed.
    cache = report["cache"]
    if not os.access(REDIS_SERVER, os.X_OK):
        assert cache is None
        return
    for tier in ("l1", "l2"):
        s = cache[tier]
        assert s["completed"] > 0
        assert s["tasks_per_s"] > 0
        assert 0 < s["p50_us"] <= s["p99_us"]
    redis = cache["redis"]
    assert redis["completed"] > 0
    assert redis["ops_per_s"] > 0
    assert 0 < redis["p50_us"] <= redis["p99_us"]
    assert cache["ratio_l1_redis"] > 0
    assert cache["ratio_l2_redis"] > 0
    assert len(cache["ratio_rounds"]) == 1
    lat = cache["latency_1x1"]
    assert 0 < lat["l1_p50_us"] <= lat["l1_p99_us"]
    assert 0 < lat["redis_p50_us"] <= lat["redis_p99_us"]
    assert abs(lat["ratio"] - lat["l1_p50_us"] / lat["redis_p50_us"]) < 1e-6
    assert cache["value_bytes"] == report["config"]["payload"]


def test_bench_rejects_bad_flag():
    out = subprocess.run([os.path.join(BIN, "yard-bench"), "--window", "0"],
                         capture_output=True, timeout=30, text=True)
    assert out.returncode == 2
    assert "window" in out.stderr
    # The event window must hold at least one batch of 256 events.
    out = subprocess.run([os.path.join(BIN, "yard-bench"), "--event-window",
                          "255"], capture_output=True, timeout=30, text=True)
    assert out.returncode == 2
    assert "event-window" in out.stderr
    out = subprocess.run([os.path.join(BIN, "yard-bench"), "--help"],
                         capture_output=True, timeout=30, text=True)
    assert out.returncode == 0
    assert "--no-cache" in out.stdout


def test_http_bench_short_run():
    """bench/http_bench.py (wrk against yard-health, and the SSE rate) runs
    end to end and reports every endpoint without errors."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "bench",
                          "http_bench.py")
    out = subprocess.run(["/usr/bin/python3", script, "--bin", BIN, "--json",
                          "--seconds", "1", "--connections", "8"],
                         capture_output=True, timeout=120, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    paths = [r["path"] for r in report["http"]]
    assert paths == ["/metrics", "/v1/metrics/performance", "/v1/workers",
                     "/v1/health"], paths
    for r in report["http"]:
        assert r["rps"] and r["rps"] > 0, r
        assert r["errors"] == 0, r  # every answer was 2xx (the key worked)
        assert r["requests"] > 0 and 0 < r["p50_us"] <= r["p99_us"], r
    sse = report["sse"]
    assert sse["published"] > 0 and sse["sse_events"] > 0, sse
    # Every event the broker handed yard-health reached the SSE reader,
    # or the reader was told it was dropped.
    assert sse["sse_events"] + sse["sse_dropped_reported"] >= \
        sse["delivered_to_subscribers"] * 0.99, sse
