"""The Yard worker: serve one service with a Python handler (PROTOCOL.md 5.5-5.7, 8.2, 8.5)."""

from __future__ import annotations

import abc
import enum
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, ClassVar, Optional, Union

import zmq

from . import wire
from ._health import Health, LoopStats
from ._loop import (DISCONNECT_LINGER_MS, LIVENESS_S, EventLoop, dealer, read_command, read_error,
                    reconnect_delay)
from ._version import __version__
from .client import DEFAULT_ENDPOINT
from .errors import InvalidError, YardError
from .events import event_body

log = logging.getLogger("yard")

HandlerResult = Union[bytes, bytearray, memoryview, str, None]
_REPORT_EVERY_INTERVALS = 5


class Reject(Exception):
    """Raise from a handler when the request itself is bad: the task ends ``invalid``.

    The broker neither retries it nor counts it against the service's
    circuit breaker. The exception's text becomes the task's error.
    """


class Job:
    """One task as a handler sees it.

    ``id`` is the client's task id (for logs), ``attempt`` counts dispatches
    (above 1 for a re-run), ``deadline`` is the ``time.monotonic()`` at which
    the broker gives up on the task. Handlers of long tasks should watch
    :attr:`cancelled` (or :meth:`wait_cancelled`) and return early.
    """

    def __init__(self, task: wire.Task, worker: Worker) -> None:
        self.handle = task.job
        self.id = task.id.decode("utf-8", "replace")
        self.service = task.service.decode()
        self.payload = task.payload or b""
        self.attempt = task.attempt
        self.headers = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                        for k, v in task.headers}
        self.deadline = time.monotonic() + task.timeout_ms / 1000
        self._worker = worker
        self._cancelled = threading.Event()

    @property
    def remaining(self) -> float:
        """Seconds left until the deadline (0 once passed)."""
        return max(0.0, self.deadline - time.monotonic())

    @property
    def cancelled(self) -> bool:
        """True once the broker asked to stop this job (cancelled, or past its deadline)."""
        return self._cancelled.is_set()

    def wait_cancelled(self, timeout: Optional[float] = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early if the job is cancelled; True if it was."""
        return self._cancelled.wait(timeout)

    def publish(self, type: str, payload: Any = None, *, trace_id: Optional[str] = None,
                meta: Optional[Mapping[str, str]] = None) -> None:
        """Publish an event through the worker's connection (see :meth:`Worker.publish`)."""
        self._worker.publish(type, payload, trace_id=trace_id, meta=meta)

    def _cancel(self) -> None:
        """Mark the job cancelled, waking :meth:`wait_cancelled`."""
        self._cancelled.set()


class Handler(abc.ABC):
    """A class-based handler: set ``service`` and implement :meth:`handle`.

    Register an instance with :meth:`Worker.register`. ``handle`` runs on one
    of the worker's ``capacity`` handler threads, so it may block.
    """

    service: ClassVar[str]

    @abc.abstractmethod
    def handle(self, job: Job) -> HandlerResult:
        """Run one job. Return its result (bytes, or str as UTF-8, or None for
        empty); raise :class:`Reject` for a bad request, anything else for a
        failure (the broker may retry it)."""


class _FunctionHandler(Handler):
    """A handler made from a plain function by :meth:`Worker.handler`."""

    def __init__(self, service: str, function: Callable[[Job], HandlerResult]) -> None:
        self.service = service  # type: ignore[misc]
        self.function = function

    def handle(self, job: Job) -> HandlerResult:
        """Call the function."""
        return self.function(job)


class _State(enum.Enum):
    """The worker's states (PROTOCOL.md 8.2)."""

    WAITING = "waiting to connect"
    REGISTERING = "registering"
    SERVING = "serving"
    DRAINING = "draining"
    GONE = "gone"


@dataclass(eq=False)
class _Held:
    """A job the broker gave this connection and is owed a RESULT.

    ``started`` (a handler thread took it) and ``skipped`` (cancelled before
    that) change under the worker's claim lock, so exactly one of the two
    happens.
    """

    job: Job
    started: bool = False
    skipped: bool = False


class _HandlerThreads:
    """Up to ``size`` handler threads, started as jobs need them, taking held
    jobs from one queue: what a ThreadPoolExecutor does, without a Future
    and a work item per job. A thread that finishes a job counts itself idle,
    and a new job starts a new thread only when none is (the executor's
    rule). Daemon threads: a handler still running when the worker has
    stopped (past its grace period) does not keep the process alive.
    """

    def __init__(self, size: int, serve: Callable[[_Held], None]) -> None:
        self._size = size
        self._serve = serve
        self._jobs: queue.SimpleQueue[Optional[_Held]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def submit(self, held: _Held) -> None:
        """Queue a job for the next free handler thread."""
        self._jobs.put(held)
        with self._lock:
            if self._closed:
                return
            if self._idle:
                self._idle -= 1
                return
            if self._threads == self._size:
                return
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._loop, name=f"yard-handler_{number}", daemon=True).start()

    def close(self) -> None:
        """Drop the jobs not started; each thread ends after its current one."""
        with self._lock:
            self._closed = True
            threads = self._threads
        try:
            while True:
                self._jobs.get_nowait()
        except queue.Empty:
            pass
        for _ in range(threads):
            self._jobs.put(None)

    def _loop(self) -> None:
        """One handler thread: run jobs until closed."""
        while True:
            held = self._jobs.get()
            if held is None:
                return
            try:
                self._serve(held)
            except Exception:  # a bug, not the handler's failure (that is a result)
                log.exception("unexpected error on a handler thread")
            with self._lock:
                self._idle += 1


@dataclass
class _Connection:
    """What belongs to one registration; a reconnect abandons all of it."""

    sock: zmq.Socket
    held: dict[int, _Held] = field(default_factory=dict)
    results: list[bytes] = field(default_factory=list)
    last_heard: float = 0.0
    last_sent: float = 0.0
    last_report: float = 0.0


class Worker:
    """Serves one service: connects, registers, runs tasks, drains on stop.

    ``capacity`` is how many tasks it holds at once, each run on its own
    handler thread. With ``inline=True`` the handler runs on the worker's
    I/O thread instead, one job at a time as TASKs arrive: no hand-off
    between threads, for handlers that are quick and never block (an echo,
    a lookup in memory); a slow one delays everything else, heartbeats
    included. ``heartbeat_ms`` is how often it reports when idle; it
    must not exceed the broker's heartbeat interval (1000 ms by default),
    which declares a worker silent for 3 intervals lost. ``grace_ms``
    bounds a graceful stop.

    A worker serves one service (one connection per service, PROTOCOL.md
    5.5); run several workers for several services. Use it with
    :meth:`run` (blocks; SIGTERM and SIGINT stop it gracefully when called
    on the main thread), or :meth:`start` and :meth:`stop`, or as a context
    manager.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, name: Optional[str] = None,
                 capacity: int = 8, heartbeat_ms: int = 1000, grace_ms: int = 10_000,
                 version: str = __version__, context: Optional[zmq.Context] = None,
                 inline: bool = False) -> None:
        if not 1 <= capacity <= wire.MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1..{wire.MAX_CAPACITY}")
        if not 1 <= heartbeat_ms <= wire.HEARTBEAT_INTERVAL_MS:
            raise ValueError(f"heartbeat_ms must be in 1..{wire.HEARTBEAT_INTERVAL_MS}")
        self.endpoint = endpoint
        self.name = name if name is not None else f"{socket.gethostname()}-{os.getpid()}"
        self.capacity = capacity
        self.version = version
        self._heartbeat_s = heartbeat_ms / 1000
        self._grace_s = grace_ms / 1000
        self._context = context or zmq.Context()
        self._owns_context = context is None
        self._handler: Optional[Handler] = None
        self._inline = inline
        self._threads = _HandlerThreads(capacity, self._run)
        self._claim = threading.Lock()  # guards _Held.started and _Held.skipped
        # Results made on handler threads, waiting for the I/O thread; it is
        # woken once for all that come before it looks (see _hand_over).
        self._finished: deque[tuple[_Held, bytes]] = deque()
        self._wake_pending = False
        stats = LoopStats()
        self._loop = EventLoop("yard-worker", self._io_tick, stats)
        self._health = Health(version, stats)
        self._started = False
        self._acknowledged = False  # the broker acknowledged a READY at least once
        self._settled = threading.Event()  # set on that acknowledgement or when stopped
        self._done = threading.Event()
        self._error: Optional[YardError] = None
        # Owned by the loop thread:
        self._state = _State.WAITING
        self._conn: Optional[_Connection] = None
        self._attempt = 0
        self._connect_at = 0.0
        self._drain_deadline = 0.0

    # ------------------------------------------------------------ setup

    def handler(self, service: str) -> Callable[[Callable[[Job], HandlerResult]],
                                                Callable[[Job], HandlerResult]]:
        """Decorator registering ``function(job)`` as the handler of ``service``."""
        def decorate(function: Callable[[Job], HandlerResult]) -> Callable[[Job], HandlerResult]:
            self.register(_FunctionHandler(service, function))
            return function
        return decorate

    def register(self, handler: Handler) -> None:
        """Register the worker's one handler (a :class:`Handler` instance)."""
        if self._handler is not None:
            raise ValueError(f"this worker already serves {self._handler.service!r}; "
                             "use one Worker per service")
        self._ready_frame(handler.service, self.capacity)  # checks the name now
        self._handler = handler

    @property
    def service(self) -> Optional[str]:
        """The registered service, if any."""
        return self._handler.service if self._handler is not None else None

    # ------------------------------------------------------------ lifetime

    def start(self) -> None:
        """Connect and serve on a background thread."""
        if self._handler is None:
            raise RuntimeError("register a handler before starting the worker")
        if self._started:
            raise RuntimeError("the worker was already started")
        self._started = True
        self._loop.start()

    def wait_registered(self, timeout: Optional[float] = None) -> bool:
        """Wait until the broker first acknowledged the READY; False on timeout.

        Raises the :class:`YardError` that stopped the worker, if one did.
        """
        if not self._started:
            raise RuntimeError("the worker is not started")
        self._settled.wait(timeout)
        if self._error is not None:
            raise self._error
        return self._acknowledged

    def run(self) -> None:
        """Serve until stopped; on the main thread SIGTERM and SIGINT stop it gracefully.

        A second signal stops at once. Raises the :class:`YardError` that
        stopped the worker, if one did (the broker refused its READY).
        """
        self.start()
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            while not self._done.wait(0.2):
                pass  # short waits, so that signal handlers run promptly
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)
            self._finish()
        if self._error is not None:
            raise self._error

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop gracefully: READY capacity 0, finish the held tasks, DISCONNECT.

        Waits at most ``timeout`` seconds (default: the grace period plus 5 s).
        """
        if not self._started:
            return
        self._loop.call_soon(self._io_drain)
        self._done.wait(self._grace_s + 5 if timeout is None else timeout)
        self._finish()

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def publish(self, type: str, payload: Any = None, *, trace_id: Optional[str] = None,
                meta: Optional[Mapping[str, str]] = None) -> None:
        """Publish an event through this worker's connection (role W), without waiting.

        ``source`` is the worker's name. Raises :class:`InvalidError` for an
        event the broker would refuse.
        """
        body = event_body(type, payload, source=self.name, trace_id=trace_id, meta=meta)
        try:
            frame = wire.encode_checked(wire.Role.WORKER, wire.Command.PUBLISH, body)
        except wire.WireError as exc:
            raise InvalidError(str(exc)) from None
        self._loop.call_soon(lambda: self._io_publish(frame))

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        """SIGTERM or SIGINT: drain (a second one stops at once)."""
        log.info("signal %d: stopping the worker", signum)
        self._loop.call_soon(self._io_drain)

    def _finish(self) -> None:
        """Release the I/O thread's context and the handler threads."""
        if self._loop.join(5.0) and self._owns_context and not self._context.closed:
            self._context.term()
        self._threads.close()

    def _ready_frame(self, service: str, capacity: int) -> bytes:
        """A checked READY body for ``service`` and ``capacity``."""
        body = wire.Ready(service=service.encode(), capacity=capacity, name=self.name.encode(),
                          pid=os.getpid(), version=self.version.encode())
        try:
            return wire.encode_checked(wire.Role.WORKER, wire.Command.READY, body)
        except wire.WireError as exc:
            raise InvalidError(f"bad READY: {exc}") from None

    # ------------------------------------------------------------ handler threads

    def _run(self, held: _Held) -> None:
        """Run one job on a handler thread and hand its RESULT to the I/O thread."""
        with self._claim:
            if held.skipped:  # cancelled while queued, and answered then
                return
            held.started = True
        self._hand_over(held, self._execute(held))

    def _execute(self, held: _Held) -> bytes:
        """Run one job's handler; its encoded RESULT."""
        job = held.job
        started = time.perf_counter()
        status, payload, error = wire.Status.OK, b"", ""
        try:
            payload = _payload_bytes(self._handler.handle(job))  # type: ignore[union-attr]
        except Reject as exc:
            status, error = wire.Status.INVALID, str(exc) or "rejected by the handler"
        except Exception as exc:  # the handler's failure is the task's result
            status, error = wire.Status.ERROR, f"{type(exc).__name__}: {exc}"
        if job.cancelled:
            status, payload, error = wire.Status.CANCELLED, b"", "cancelled"
        body = wire.WorkerResult(job=job.handle, status=status,
                                 payload=payload if status is wire.Status.OK else None,
                                 error=_truncate(error),
                                 run_us=int((time.perf_counter() - started) * 1e6))
        try:
            frame = wire.encode_trusted(wire.Role.WORKER, wire.Command.RESULT, body)
        except wire.WireError as exc:
            frame = wire.encode_body(wire.Role.WORKER, wire.Command.RESULT, wire.WorkerResult(
                job=job.handle, status=wire.Status.ERROR,
                error=_truncate(f"the handler's result was refused: {exc}")))
        return frame

    def _hand_over(self, held: _Held, frame: bytes) -> None:
        """Give a RESULT to the I/O thread, waking it only if no wake-up is
        already on its way: results made meanwhile go with the same one."""
        self._finished.append((held, frame))
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._io_take_finished)

    # ------------------------------------------------------------ loop thread

    def _io_connect(self) -> None:
        """Open a new connection (a new identity) and send READY."""
        sock = dealer(self._context, self.endpoint)
        self._loop.add_reader(sock, self._io_on_message)
        now = time.monotonic()
        self._conn = _Connection(sock, last_heard=now, last_report=now)
        self._state = _State.REGISTERING
        assert self._handler is not None
        self._io_send(wire.Command.READY, [self._ready_frame(self._handler.service,
                                                             self.capacity)])

    def _io_close_connection(self) -> None:
        """Close the connection, abandoning the jobs it held."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for held in conn.held.values():
            held.job._cancel()  # abandoned: its result will not be sent
        self._loop.remove_reader(conn.sock)
        conn.sock.close(linger=DISCONNECT_LINGER_MS)

    def _io_lose_connection(self, reason: str) -> None:
        """Broker gone or forgot us: reconnect after backoff (or stop, if draining)."""
        if self._state is _State.DRAINING:
            log.info("%s while draining; stopping", reason)
            self._io_gone()
            return
        self._io_close_connection()
        self._attempt += 1
        delay = reconnect_delay(self._attempt)
        log.warning("%s; reconnecting in %.2f s", reason, delay)
        self._state = _State.WAITING
        self._connect_at = time.monotonic() + delay

    def _io_gone(self, error: Optional[YardError] = None) -> None:
        """Stop for good: DISCONNECT unless failing, close, end the loop."""
        if self._conn is not None and error is None:
            self._io_send(wire.Command.DISCONNECT, [])
        self._io_close_connection()
        self._state = _State.GONE
        self._error = error
        self._loop.stop()
        self._done.set()
        self._settled.set()

    def _io_drain(self) -> None:
        """Graceful stop: READY capacity 0, then wait for held jobs (twice: stop now)."""
        if self._state is _State.DRAINING:
            log.info("stopping at once")
            self._io_gone()
        elif self._state in (_State.REGISTERING, _State.SERVING):
            assert self._handler is not None
            self._io_send(wire.Command.READY, [self._ready_frame(self._handler.service, 0)])
            self._state = _State.DRAINING
            self._drain_deadline = time.monotonic() + self._grace_s
        elif self._state is _State.WAITING:
            self._io_gone()

    def _io_send(self, command: wire.Command, bodies: list[bytes]) -> None:
        """Send without blocking; a full or missing connection drops the message."""
        conn = self._conn
        assert conn is not None
        try:
            conn.sock.send_multipart([wire.header(wire.Role.WORKER, command), *bodies],
                                     zmq.DONTWAIT)
        except zmq.Again:
            log.warning("the broker connection cannot take %s now", command.name)
            return
        conn.last_sent = time.monotonic()

    def _io_publish(self, frame: bytes) -> None:
        """Send an event if connected."""
        if self._conn is None:
            log.warning("not connected to the broker; an event was dropped")
        else:
            self._io_send(wire.Command.PUBLISH, [frame])

    def _io_send_report(self, probe: int = 0) -> None:
        """A HEARTBEAT with a health report, answering ``probe`` if not 0."""
        conn = self._conn
        assert conn is not None
        pending = sum(1 for held in conn.held.values() if not held.started)
        report = self._health.report(time.monotonic(), probe=probe,
                                     in_flight=len(conn.held), pending=pending)
        self._io_send(wire.Command.HEARTBEAT,
                      [wire.encode_body(wire.Role.WORKER, wire.Command.HEARTBEAT, report)])
        conn.last_report = time.monotonic()

    def _io_tick(self, now: float) -> None:
        """Connect when due, send results, finish a drain, heartbeat, check liveness."""
        self._health.sample_memory(now)
        if self._state is _State.WAITING:
            if now >= self._connect_at:
                self._io_connect()
            return
        conn = self._conn
        if conn is None:
            return
        if conn.results:
            for chunk in wire.batches(conn.results):
                self._io_send(wire.Command.RESULT, chunk)
            conn.results.clear()
        if self._state is _State.DRAINING and (not conn.held or now >= self._drain_deadline):
            self._io_gone()
            return
        if now - conn.last_heard >= LIVENESS_S:
            self._io_lose_connection(f"broker silent for {now - conn.last_heard:.1f} s")
        elif now - conn.last_sent >= self._heartbeat_s or \
                now - conn.last_report >= _REPORT_EVERY_INTERVALS * self._heartbeat_s:
            self._io_send_report()

    def _io_take_finished(self) -> None:
        """Take every RESULT the handler threads made so far."""
        self._wake_pending = False  # before looking: a later one wakes us again
        finished = self._finished
        while finished:
            held, frame = finished.popleft()
            self._io_finished(held, frame)

    def _io_finished(self, held: _Held, frame: bytes) -> None:
        """A job's RESULT is ready: queue it, unless the job was abandoned."""
        conn = self._conn
        if conn is None or conn.held.get(held.job.handle) is not held:
            return  # abandoned with an old connection
        del conn.held[held.job.handle]
        conn.results.append(frame)

    def _io_on_message(self, frames: list[bytes]) -> None:
        """Dispatch one message from the broker."""
        conn = self._conn
        assert conn is not None
        conn.last_heard = time.monotonic()
        command = read_command(frames)
        if command is None:
            return
        if command is wire.Command.ERROR:
            self._io_on_error(frames[1])
            return
        if command is wire.Command.DISCONNECT:
            self._io_lose_connection("the broker sent DISCONNECT")
            return
        if self._state is _State.REGISTERING:
            self._state = _State.SERVING
            self._attempt = 0
            self._acknowledged = True
            self._settled.set()
            log.info("registered for %s with capacity %d", self.service, self.capacity)
        if command is wire.Command.TASK:
            for frame in frames[1:]:
                self._io_on_task(conn, frame)
        elif command is wire.Command.CANCEL:
            for frame in frames[1:]:
                self._io_on_cancel(conn, frame)
        elif command is wire.Command.HEARTBEAT:
            if len(frames) == 2:
                self._io_on_probe(frames[1])
        elif command is not wire.Command.PUBLISH_ACK:
            log.warning("discarding %s, not a command for workers", command.name)

    def _io_on_task(self, conn: _Connection, frame: bytes) -> None:
        """One TASK body: start the job, or answer an undecodable one."""
        try:
            task = wire.decode_body(wire.Role.BROKER, wire.Command.TASK, frame)
        except wire.WireError as exc:
            if exc.job is None:
                log.warning("discarding an undecodable TASK: %s", exc)
                return
            conn.results.append(wire.encode_body(
                wire.Role.WORKER, wire.Command.RESULT,
                wire.WorkerResult(job=exc.job, status=wire.Status.ERROR,
                                  error=_truncate(f"invalid task: {exc}"))))
            return
        assert isinstance(task, wire.Task)
        if task.job in conn.held:
            return  # a duplicate
        held = _Held(Job(task, self))
        conn.held[task.job] = held
        if self._inline:  # run it here and now (no other thread touches it)
            held.started = True
            self._io_finished(held, self._execute(held))
        else:
            self._threads.submit(held)

    def _io_on_cancel(self, conn: _Connection, frame: bytes) -> None:
        """One CANCEL body: stop a queued job at once, flag a running one."""
        try:
            body = wire.decode_body(wire.Role.BROKER, wire.Command.CANCEL, frame)
        except wire.WireError as exc:
            log.warning("discarding an undecodable CANCEL: %s", exc)
            return
        assert isinstance(body, wire.CancelJob)
        held = conn.held.get(body.job)
        if held is None:
            return
        held.job._cancel()
        with self._claim:
            queued = not held.started
            held.skipped = queued
        if queued:  # no handler thread took it: answer now
            del conn.held[body.job]
            conn.results.append(wire.encode_body(
                wire.Role.WORKER, wire.Command.RESULT,
                wire.WorkerResult(job=body.job, status=wire.Status.CANCELLED,
                                  error=b"cancelled")))

    def _io_on_probe(self, frame: bytes) -> None:
        """A PROBE: answer at once with a report (5.7)."""
        try:
            body = wire.decode_body(wire.Role.BROKER, wire.Command.HEARTBEAT, frame)
        except wire.WireError as exc:
            log.warning("ignoring a bad probe: %s", exc)
            return
        assert isinstance(body, wire.Probe)
        self._io_send_report(body.probe)

    def _io_on_error(self, frame: bytes) -> None:
        """An ERROR: fatal while registering or on bad_version, else logged."""
        got = read_error(frame)
        if got is None:
            return
        body, text = got
        if self._state is _State.REGISTERING:
            self._io_gone(YardError(f"the broker refused READY: {text}"))
        elif body.code == b"bad_version":
            self._io_gone(YardError(f"the broker speaks another version: {text}"))
        else:
            log.warning("the broker refused a message: %s", text)


def _payload_bytes(value: HandlerResult) -> bytes:
    """A handler's return value as a result payload."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"the handler returned {type(value).__name__}, not bytes or str")


def _truncate(text: str) -> bytes:
    """``text`` as UTF-8, cut at a character boundary to fit an ``error`` (4096 bytes)."""
    return text.encode()[:wire.MAX_ERROR].decode("utf-8", "ignore").encode()
