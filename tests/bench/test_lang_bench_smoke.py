"""bench/lang_bench.py runs end to end and its --json is what scripts rely on.

A --quick run (1 round of 1 s per side, the open loop for 2 s): this checks
the benchmark works (every side measured something and no task failed),
not how fast anything is; figures come from make bench.
"""
import json
import os
import shutil
import subprocess

import pytest

BIN = os.environ.get("YARD_BIN", "build/bin")
SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "lang_bench.py")
SIDES = {"c_w1", "python_w1", "node_w1", "c_w16", "python_w16", "node_w16",
         "c_worker", "python_worker", "python_worker_inline", "node_worker"}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_lang_bench_quick_json():
    out = subprocess.run(["/usr/bin/python3", SCRIPT, "--bin", BIN, "--quick", "--json"],
                         capture_output=True, timeout=180, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["config"]["rounds"] == 1
    assert set(report["sides"]) == SIDES
    for name, side in report["sides"].items():
        assert side["tasks"] > 0, name
        assert side["errors"] == 0, name
        assert side["tasks_per_s"] > 0, name
        assert 0 < side["p50_us"] <= side["p99_us"], name
        assert side["ratio"] > 0, name
        assert side["cpu_pct"]["client"] is not None, name
        assert len(side["rounds"]) == 1, name
    for ref in ("c_w1", "c_w16", "c_worker"):
        assert report["sides"][ref]["ratio"] == 1.0
    loops = report["open_loop"]
    assert set(loops) == {"python_worker", "python_worker_inline"}
    for name, loop in loops.items():
        assert loop["offered_per_s"] == 10000, name
        assert loop["tasks"] > 0, name
        assert loop["errors"] == 0, name
        assert loop["cpu_pct"]["workers"] is not None, name
        assert isinstance(loop["pass"], bool), name
    # The verdict is reported, not asserted: it is a timing (noisy machines).
    assert isinstance(report["verdict_10k"]["pass"], bool)


def test_lang_bench_text_flags():
    out = subprocess.run(["/usr/bin/python3", SCRIPT, "--help"], capture_output=True,
                         timeout=30, text=True)
    assert out.returncode == 0
    assert "--quick" in out.stdout
    out = subprocess.run(["/usr/bin/python3", SCRIPT, "--bin", BIN, "--rounds", "0"],
                         capture_output=True, timeout=30, text=True)
    assert out.returncode == 2


def test_yard_bench_load_only_flags():
    """yard-bench --load-only refuses the full run's flags, and they refuse its own."""
    bench = os.path.join(BIN, "yard-bench")
    out = subprocess.run([bench, "--load-only", "--broker", "tcp://127.0.0.1:1",
                          "--service", "s", "--rounds", "2"],
                         capture_output=True, timeout=30, text=True)
    assert out.returncode == 2 and "--rounds" in out.stderr
    out = subprocess.run([bench, "--rate", "100"], capture_output=True, timeout=30, text=True)
    assert out.returncode == 2 and "--load-only" in out.stderr
    out = subprocess.run([bench, "--load-only", "--service", "s"], capture_output=True,
                         timeout=30, text=True)
    assert out.returncode == 2 and "--broker" in out.stderr
    out = subprocess.run([bench, "--help"], capture_output=True, timeout=30, text=True)
    assert "--load-only" in out.stdout and "--rate" in out.stdout
