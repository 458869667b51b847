"""The event loop under the client and worker: calls from other threads run
on the loop thread, and a loop with nothing to do sleeps in its poll."""

from __future__ import annotations

import threading
import time

from yard._health import LoopStats
from yard._loop import TICK_MS, EventLoop


def test_calls_run_on_the_loop_thread_and_an_idle_loop_does_not_spin() -> None:
    stats = LoopStats()
    loop = EventLoop("yard-test-loop", lambda now: None, stats)
    loop.start()
    ran: list[str] = []
    done = threading.Event()
    try:
        # Many calls from several threads: each runs once, on the loop thread.
        def post(n: int) -> None:
            for _ in range(n):
                loop.call_soon(lambda: ran.append(threading.current_thread().name))

        posters = [threading.Thread(target=post, args=(500,)) for _ in range(4)]
        for t in posters:
            t.start()
        for t in posters:
            t.join()
        loop.call_soon(done.set)
        assert done.wait(5)
        assert len(ran) == 2000
        assert set(ran) == {"yard-test-loop"}

        # Idle now: each iteration is a poll that waits its full tick. A
        # wake-up byte left unread would make every poll return at once
        # (tens of thousands of iterations in this second).
        before = stats.iterations
        time.sleep(1.0)
        idle_iterations = stats.iterations - before
        assert idle_iterations <= 3 * (1000 // TICK_MS), idle_iterations
    finally:
        loop.call_soon(loop.stop)
        assert loop.join(5)
