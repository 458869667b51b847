"""Process health figures a worker reports (PROTOCOL.md 5.7, 8.8)."""

from __future__ import annotations

import collections
import os
import time
from typing import Optional

from . import wire

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_GROWTH_WINDOW_S = 300.0
_SAMPLE_EVERY_S = 1.0


def _env_ms(name: str, default: int) -> int:
    """A positive integer from the environment variable ``name``, else ``default``."""
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def _process_age_s() -> float:
    """Seconds since this process started (``/proc``), else 0."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            start_ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime", "rb") as uptime:
            boot_s = float(uptime.read().split()[0])
        return max(0.0, boot_s - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError, AttributeError):
        return 0.0


def resident_bytes() -> int:
    """Resident memory of this process now, from ``/proc/self/statm`` (0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


class LoopStats:
    """Figures about one event loop: iterations, busy time, lateness, stalls.

    Thresholds come from ``YARD_LOOP_SLOW_MS`` (default 50) and
    ``YARD_LOOP_STALL_MS`` (default 500), as in every Yard process.
    """

    def __init__(self) -> None:
        self.slow_ms = _env_ms("YARD_LOOP_SLOW_MS", 50)
        self.stall_ms = _env_ms("YARD_LOOP_STALL_MS", 500)
        self.iterations = 0
        self.busy_us = 0
        self.max_us = 0
        self.max_lag_us = 0
        self.slow = 0
        self.stalls = 0
        self.last_stall_us = 0
        self.last_stall_end: Optional[float] = None

    def record(self, busy_s: float, lag_s: float, now: float) -> None:
        """Count one iteration that worked ``busy_s`` after a poll ``lag_s`` late."""
        busy_us, lag_us = int(busy_s * 1e6), int(max(0.0, lag_s) * 1e6)
        self.iterations += 1
        self.busy_us += busy_us
        self.max_us = max(self.max_us, busy_us)
        self.max_lag_us = max(self.max_lag_us, lag_us)
        if busy_us >= self.slow_ms * 1000:
            self.slow += 1
        worst = max(busy_us, lag_us)
        if worst >= self.stall_ms * 1000:
            self.stalls += 1
            self.last_stall_us = worst
            self.last_stall_end = now


class Health:
    """Everything a worker's REPORT carries about its process."""

    def __init__(self, version: str, loop: LoopStats) -> None:
        self.version = version.encode()
        self.loop = loop
        self.started = time.monotonic() - _process_age_s()
        self.rss_peak = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def sample_memory(self, now: float) -> None:
        """Take a memory sample if a second has passed since the last one."""
        if self._samples and now - self._samples[-1][0] < _SAMPLE_EVERY_S:
            return
        rss = resident_bytes()
        self.rss_peak = max(self.rss_peak, rss)
        self._samples.append((now, rss))
        while now - self._samples[0][0] > _GROWTH_WINDOW_S:
            self._samples.popleft()

    def report(self, now: float, *, probe: int = 0, in_flight: int = 0,
               pending: int = 0) -> wire.Report:
        """A report as of ``now`` (a monotonic time), answering ``probe`` if not 0."""
        rss = resident_bytes()
        self.rss_peak = max(self.rss_peak, rss)
        smallest = min((sample for _, sample in self._samples), default=rss)
        window_s = now - self._samples[0][0] if self._samples else 0.0
        loop = self.loop
        stall_age_ms = 0
        if loop.last_stall_end is not None:
            stall_age_ms = int((now - loop.last_stall_end) * 1000)
        return wire.Report(
            probe=probe,
            uptime_ms=int((now - self.started) * 1000),
            version=self.version,
            rss=rss,
            rss_peak=self.rss_peak,
            rss_growth=max(0, rss - smallest),
            growth_window_ms=int(window_s * 1000),
            loop_iterations=loop.iterations,
            loop_busy_us=loop.busy_us,
            loop_max_us=loop.max_us,
            loop_max_lag_us=loop.max_lag_us,
            loop_slow=loop.slow,
            loop_stalls=loop.stalls,
            loop_last_stall_us=loop.last_stall_us,
            loop_stall_age_ms=stall_age_ms,
            loop_slow_ms=loop.slow_ms,
            loop_stall_ms=loop.stall_ms,
            in_flight=in_flight,
            pending=pending,
        )
