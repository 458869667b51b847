"""The I/O thread behind :class:`~yard.Client` and :class:`~yard.Worker`.

ZeroMQ sockets must not be shared between threads, so each client or worker
runs one :class:`EventLoop` thread that owns its sockets. Other threads hand
it work with :meth:`EventLoop.call_soon`; a socket pair wakes the poll at
once. Timers are checked on every iteration, at least every
``TICK_MS`` (PROTOCOL.md 8.5 asks for 100 ms at most).
"""

from __future__ import annotations

import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Optional

import zmq

from . import wire
from ._health import LoopStats

log = logging.getLogger("yard")

TICK_MS = 100
INTERVAL_S = wire.HEARTBEAT_INTERVAL_MS / 1000
LIVENESS_S = wire.HEARTBEAT_LIVENESS * INTERVAL_S
# A DISCONNECT is worth a moment's linger on close; every other send is not.
DISCONNECT_LINGER_MS = 200
_READ_BURST = 1024

Handler = Callable[[list[bytes]], None]


def printable(text: bytes) -> str:
    """Untrusted peer text for a log line, control characters escaped (PROTOCOL.md 11.3)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text.decode("utf-8", "replace"))


def read_error(frame: bytes) -> Optional[tuple[wire.ErrorBody, str]]:
    """Decodes an ERROR body from the broker: the body and its text
    ("code: message", printable), or None after logging an undecodable one."""
    try:
        body = wire.decode_body(wire.Role.BROKER, wire.Command.ERROR, frame)
    except wire.WireError as exc:
        log.warning("discarding an undecodable ERROR: %s", exc)
        return None
    assert isinstance(body, wire.ErrorBody)
    return body, f"{printable(body.code)}: {printable(body.message)}"


def read_command(frames: list[bytes], where: str = "from the broker") -> Optional[wire.Command]:
    """The command of a message from the broker, or None after logging one
    whose header is bad or whose sender is not the broker (never answered)."""
    try:
        role, command = wire.parse_header(frames)
    except wire.WireError as exc:
        log.warning("discarding a message %s: %s", where, exc)
        return None
    if role is not wire.Role.BROKER:
        log.warning("discarding %s from role %s", command.name, chr(role))
        return None
    return command


def reconnect_delay(attempt: int) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (1 first), PROTOCOL.md 8.2."""
    base_ms = min(5000, 100 * 2 ** min(attempt - 1, 16))
    return min(5000, base_ms * random.uniform(0.8, 1.2)) / 1000


def dealer(context: zmq.Context, endpoint: str, *, routing_id: Optional[bytes] = None,
           reconnect: bool = True) -> zmq.Socket:
    """A DEALER with the options of PROTOCOL.md 3, connected to ``endpoint``."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MSGSIZE)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    if not reconnect:
        sock.setsockopt(zmq.RECONNECT_IVL, -1)
    sock.connect(endpoint)
    return sock


class _Waker:
    """A socket pair whose read end the poller watches."""

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)

    def wake(self) -> None:
        """Make the next (or current) poll return."""
        try:
            self.writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake, or closing

    def drain(self) -> None:
        """Read every pending wake-up byte."""
        try:
            while self.reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close both ends."""
        self.reader.close()
        self.writer.close()


class EventLoop:
    """A thread that polls sockets, runs queued calls and a periodic tick.

    ``tick(now)`` runs after every iteration with the monotonic time.
    Everything registered with :meth:`add_reader`, every call passed to
    :meth:`call_soon` and ``tick`` run on the loop thread.
    """

    def __init__(self, name: str, tick: Callable[[float], None],
                 stats: Optional[LoopStats] = None) -> None:
        self._tick = tick
        self.stats = stats
        self._poller = zmq.Poller()
        self._readers: dict[zmq.Socket, Handler] = {}
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._waker = _Waker()
        # Registered by its fd: pyzmq's poll names a native socket by its fd
        # (an int), never by the object, so that is what _iterate looks for.
        # Missing it would leave the wake-up byte unread and every poll
        # returning at once: a loop spinning a core from the first call_soon.
        self._waker_fd = self._waker.reader.fileno()
        self._poller.register(self._waker_fd, zmq.POLLIN)
        # A wake-up byte is on its way or unread: call_soon need not send one
        # (one byte, then, however many calls are queued before the loop looks).
        self._woken = False
        self._running = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the loop thread."""
        self._thread.start()

    def add_reader(self, sock: zmq.Socket, handler: Handler) -> None:
        """Call ``handler(frames)`` for each message ``sock`` receives."""
        self._readers[sock] = handler
        self._poller.register(sock, zmq.POLLIN)

    def remove_reader(self, sock: zmq.Socket) -> None:
        """Stop watching ``sock`` (the caller closes it)."""
        if self._readers.pop(sock, None) is not None:
            self._poller.unregister(sock)

    def call_soon(self, call: Callable[[], None]) -> None:
        """Run ``call()`` on the loop thread at its next iteration. Any thread may call this."""
        self._calls.put(call)
        if not self._woken:
            self._woken = True
            self._waker.wake()

    def stop(self) -> None:
        """Make the loop exit after the current iteration (call it on the loop thread)."""
        self._running = False

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the loop thread to end; True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        """The thread's body: iterate until stopped."""
        try:
            while self._running:
                self._iterate()
        finally:
            self._waker.close()

    def _iterate(self) -> None:
        """One poll, the messages and calls it made ready, the tick, the figures."""
        started = time.monotonic()
        ready = dict(self._poller.poll(TICK_MS))
        now = time.monotonic()
        if self._waker_fd in ready:
            # Cleared after the drain (which may also read a byte sent while
            # it ran) and before the calls are taken: a call queued after
            # this point sends a new byte, one queued before is taken below.
            self._waker.drain()
            self._woken = False
        # Calls before messages: a call queued before a message arrived
        # (a submit, say) must be in place when that message is handled
        # (an ERROR that ends every task must find it).
        self._run_calls()
        for sock, handler in list(self._readers.items()):
            if sock in ready:
                self._read(sock, handler)
        self._guard(self._tick, now)
        if self.stats is not None:
            lag = 0.0 if ready else now - started - TICK_MS / 1000
            self.stats.record(time.monotonic() - now, lag, now)

    def _read(self, sock: zmq.Socket, handler: Handler) -> None:
        """Hand ``handler`` up to a burst of messages from ``sock``."""
        for _ in range(_READ_BURST):
            if self._readers.get(sock) is not handler:
                return  # the handler replaced or dropped the socket
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._guard(handler, frames)

    def _run_calls(self) -> None:
        """Run every call queued by :meth:`call_soon` so far."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            self._guard(call)

    @staticmethod
    def _guard(call: Callable[..., None], *args: object) -> None:
        """Run ``call(*args)``; log, never raise, whatever it raises.

        Nothing a peer sends may stop the loop: a failure here is a bug,
        logged, and the loop goes on serving everything else.
        """
        try:
            call(*args)
        except Exception:
            log.exception("unexpected error on the I/O thread")
