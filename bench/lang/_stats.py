"""What bench/lang's Python programs share: latency percentiles reported the
way yard-bench reports them, and CPU time of a process from /proc.

Percentiles: yard-bench keeps latencies in a log-linear histogram (16
sub-buckets per power of two, common/yard_hist.c) and reports the upper
bound of the bucket holding the wanted rank, clamped to [min, max]. The
Python and Node loads keep every latency and report the same thing, so the
three clients' figures are rounded alike (at most 6.25 % above the exact
value).
"""

from __future__ import annotations

import math
import os
import time

_SUB = 16
_HZ = os.sysconf("SC_CLK_TCK")


def _upper(value: int) -> int:
    """The upper bound of the yard_hist bucket holding ``value`` (>= 0)."""
    if value < _SUB:
        return value
    msb = value.bit_length() - 1
    width_bits = msb - 4
    return ((value >> width_bits) << width_bits) + (1 << width_bits) - 1


def percentile(ordered: list[int], p: float) -> int:
    """yard_hist_percentile of the latencies in ``ordered`` (sorted, us)."""
    if not ordered:
        return 0
    n = len(ordered)
    rank = min(n, max(1, math.ceil(p / 100.0 * n)))
    return max(ordered[0], min(ordered[-1], _upper(ordered[rank - 1])))


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads) in seconds; 0.0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: count from the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _HZ


class CpuWindow:
    """CPU of this process and of other processes (broker, workers) between
    :meth:`open` and :meth:`close`, as percent of one core."""

    def __init__(self, broker_pid: int = 0, worker_pids: tuple[int, ...] = ()) -> None:
        self.broker_pid = broker_pid
        self.worker_pids = worker_pids
        self._start: tuple[float, float, float, float] | None = None
        self.result: dict[str, float | None] | None = None

    def _sample(self, now: float) -> tuple[float, float, float, float]:
        broker = proc_cpu_s(self.broker_pid) if self.broker_pid else 0.0
        workers = sum(proc_cpu_s(pid) for pid in self.worker_pids)
        return now, time.process_time(), broker, workers

    def open(self, now: float) -> None:
        """The measured window opens (``now``: time.monotonic())."""
        self._start = self._sample(now)

    def close(self, now: float) -> None:
        """The measured window closes."""
        if self._start is None or self.result is not None:
            return
        end = self._sample(now)
        wall = end[0] - self._start[0]

        def pct(i: int) -> float:
            return 100.0 * (end[i] - self._start[i]) / wall if wall > 0 else 0.0

        self.result = {
            "client": pct(1),
            "broker": pct(2) if self.broker_pid else None,
            "workers": pct(3) if self.worker_pids else None,
        }
