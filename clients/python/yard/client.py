"""The Yard client: submit tasks, await their results, publish and subscribe to events."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional, Union

import zmq

from . import wire
from ._loop import (DISCONNECT_LINGER_MS, INTERVAL_S, LIVENESS_S, EventLoop, dealer, read_command,
                    read_error)
from .errors import (
    BrokerUnreachableError,
    CancelledError,
    InvalidError,
    YardError,
    error_for,
)
from .events import Subscription, event_body

log = logging.getLogger("yard")

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
ADMIN_SERVICE = "yard.admin"


Payload = Union[bytes, bytearray, memoryview, str]


@dataclass(frozen=True)
class Result:
    """The outcome of a task that succeeded (status ``ok``).

    Timings are the broker's: ``queue_us`` waiting in queues, ``run_us`` the
    final attempt's handler time, ``total_us`` from acceptance to the
    answer. ``attempts`` is 0 and ``cached`` true for an answer from the
    response cache.
    """

    id: str
    status: wire.Status
    payload: bytes
    attempts: int
    queue_us: int
    run_us: int
    total_us: int
    cached: bool

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode()


class TaskFuture(Future[Result]):
    """The pending outcome of one task: resolves to a :class:`Result` or raises.

    It is already running when returned, so ``Future.cancel`` returns False:
    cancel a task with :meth:`Client.cancel` (``future.task_id``). Done
    callbacks run on the client's I/O thread and must not block.
    """

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.set_running_or_notify_cancel()


@dataclass(eq=False)
class _Task:
    """A task this client has sent and not seen answered (loop-owned after submit)."""

    id: bytes
    body: bytes
    timeout_ms: int
    future: TaskFuture


@dataclass(eq=False)
class _AckWait:
    """A publisher waiting for the PUBLISH_ACK of one event."""

    future: Future  # type: ignore[type-arg]
    deadline: float


def _as_bytes(payload: Payload) -> bytes:
    """A payload as bytes (a str as UTF-8)."""
    return payload.encode() if isinstance(payload, str) else bytes(payload)


class Client:
    """A thread-safe connection to a Yard broker.

    One background I/O thread owns the ZeroMQ sockets; every method may be
    called from any thread. The client follows PROTOCOL.md 8.3: a stable
    random routing id, heartbeats while tasks are outstanding, reconnect and
    resend after 3 s of broker silence or a DISCONNECT (the broker
    de-duplicates resent tasks), and a local ``timeout`` when no answer
    came ``timeout_ms`` + 2 s after a task was sent
    (:class:`BrokerUnreachableError`).

    ``events_endpoint`` (the broker's ``--events``) is needed only by
    :meth:`subscribe`. Use the client as a context manager, or call
    :meth:`close`.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *,
                 events_endpoint: Optional[str] = None,
                 context: Optional[zmq.Context] = None) -> None:
        self.endpoint = endpoint
        self.events_endpoint = events_endpoint
        self._context = context or zmq.Context()
        self._owns_context = context is None
        self._routing_id = bytes([os.urandom(1)[0] | 1]) + os.urandom(15)
        self._id_prefix = self._routing_id[1:5].hex()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False
        self._ids: set[str] = set()  # outstanding task ids, guarded by _lock
        self._loop = EventLoop("yard-client", self._io_tick)
        # Owned by the loop thread:
        self._sock: Optional[zmq.Socket] = None
        self._tasks: dict[bytes, _Task] = {}
        self._outbox: list[_Task] = []
        self._give_up: list[tuple[float, int, _Task]] = []
        self._acks: dict[int, _AckWait] = {}
        self._subscriptions: set[Subscription] = set()
        self._last_heard = 0.0
        self._last_heartbeat = 0.0
        self._loop.call_soon(self._io_connect)
        self._loop.start()

    # ------------------------------------------------------------ tasks

    def submit(self, service: str, payload: Payload = b"", *,
               timeout_ms: int = wire.DEFAULT_TIMEOUT_MS, retries: int = 0,
               backoff_ms: int = wire.DEFAULT_BACKOFF_MS, priority: int = 0,
               headers: Optional[Mapping[str, str]] = None,
               cache: Optional[Mapping[str, Any]] = None, fallback: Optional[str] = None,
               task_id: Optional[str] = None) -> TaskFuture:
        """Send one task and return its future at once.

        ``timeout_ms`` bounds the whole task (queue, attempts, backoff);
        ``retries`` are extra attempts after a handler error, ``backoff_ms``
        their base delay; ``priority`` 0..9 (9 first). ``headers`` reach the
        worker unchanged. ``cache`` is a response-cache policy (PROTOCOL.md
        10b: ``ttl_ms``, ``tags``, ``key``, ``exclude``, ``headers``; with
        ``key`` or ``exclude`` the payload must be a msgpack map).
        ``fallback`` names a service to run the task instead while
        ``service``'s circuit breaker is open. ``task_id`` defaults to a
        fresh unique id.

        Raises :class:`InvalidError` (a ``ValueError``) at once for a task
        the broker would refuse, or whose id is still outstanding.
        """
        return self._submit_all([self._task(
            service, payload, timeout_ms=timeout_ms, retries=retries, backoff_ms=backoff_ms,
            priority=priority, headers=headers, cache=cache, fallback=fallback,
            task_id=task_id)])[0]

    def call(self, service: str, payload: Payload = b"", **options: Any) -> Result:
        """Run one task and wait for it; the options are :meth:`submit`'s.

        Returns the :class:`Result` of an ``ok`` task and raises the
        :class:`YardError` subclass of any other status.
        """
        return self.submit(service, payload, **options).result()

    def batch(self, service: str, payloads: Iterable[Payload],
              **options: Any) -> list[Union[Result, YardError]]:
        """Run one task per payload, sent in SUBMIT messages of up to 256 tasks.

        Waits for all of them and returns, in input order, each task's
        :class:`Result` or the :class:`YardError` it ended with. The options
        are :meth:`submit`'s (except ``task_id``) and apply to every task.
        """
        tasks = [self._task(service, payload, **options) for payload in payloads]
        futures = self._submit_all(tasks)
        return [_outcome(future) for future in futures]

    def map(self, service: str, payloads: Iterable[Payload], *, window: int = 64,
            **options: Any) -> Iterator[Union[Result, YardError]]:
        """Run one task per payload, at most ``window`` outstanding at once.

        Yields in **input order** (like the built-in ``map``) each task's
        :class:`Result` or the :class:`YardError` it ended with; a slow task
        holds back the ones after it while later tasks keep running within
        the window. ``payloads`` may be an endless iterator.
        """
        if window < 1:
            raise ValueError("window must be at least 1")
        running: deque[TaskFuture] = deque()
        for payload in payloads:
            if len(running) == window:
                yield _outcome(running.popleft())
            running.append(self.submit(service, payload, **options))
        while running:
            yield _outcome(running.popleft())

    def cancel(self, task_id: str) -> bool:
        """Ask the broker to cancel a task; False if it is not outstanding.

        The task's future still resolves: with :class:`CancelledError`, or
        with the result it already had.
        """
        with self._lock:
            if task_id not in self._ids:
                return False
        body = wire.encode_body(wire.Role.CLIENT, wire.Command.CANCEL,
                                wire.CancelTask(id=task_id.encode()))
        self._loop.call_soon(lambda: self._io_send(wire.Command.CANCEL, [body]))
        return True

    def stats(self, *, timeout_ms: int = 5000) -> dict[str, Any]:
        """The broker's metrics (admin ``stats``, PROTOCOL.md 10)."""
        return json.loads(self.call(ADMIN_SERVICE, b"stats", timeout_ms=timeout_ms).payload)

    def ping(self, timeout_ms: int = 1000) -> dict[str, Any]:
        """Probe every worker through the broker (admin ``ping``, PROTOCOL.md 10).

        Returns the broker's answer: ``probed``, ``answered``, ``complete``
        and per worker ``answered`` and ``rtt_us``.
        """
        result = self.call(ADMIN_SERVICE, f"ping {timeout_ms}",
                           timeout_ms=timeout_ms + wire.GIVE_UP_SLACK_MS)
        return json.loads(result.payload)

    # ------------------------------------------------------------ events

    def publish(self, type: str, payload: Any = None, *, source: Optional[str] = None,
                trace_id: Optional[str] = None, meta: Optional[Mapping[str, str]] = None,
                confirm: bool = False, timeout_ms: int = 5000) -> None:
        """Publish an event on the bus (PROTOCOL.md 5.11).

        ``payload`` is any msgpack-able value (``None``: no payload). With
        ``confirm``, wait for the broker's PUBLISH_ACK: raises
        :class:`InvalidError` if it refused the event and
        :class:`BrokerUnreachableError` without an answer in ``timeout_ms``.
        Without it, return at once (a refused event is only logged).
        """
        seq = next(self._numbers) if confirm else 0
        body = event_body(type, payload, source=source, trace_id=trace_id, meta=meta, seq=seq)
        frame = _checked(wire.Command.PUBLISH, body)
        if not confirm:
            self._call_soon(lambda: self._io_send(wire.Command.PUBLISH, [frame]))
            return
        wait = _AckWait(Future(), time.monotonic() + timeout_ms / 1000)
        self._call_soon(lambda: self._io_publish_confirmed(seq, wait, frame))
        wait.future.result()

    def subscribe(self, prefixes: Iterable[str] = (), *, timeout: Optional[float] = None,
                  max_buffered: int = 10_000, ack_timeout_ms: int = 5000) -> Subscription:
        """Subscribe to events whose type starts with one of ``prefixes`` (none: all).

        Returns once the broker has acknowledged, so every event published
        afterwards reaches the subscription. ``timeout`` is how long each
        ``next()`` on it waits. Raises :class:`BrokerUnreachableError`
        without an acknowledgement in ``ack_timeout_ms``, and
        :class:`YardError` if the broker refuses (too many subscribers).
        """
        if self.events_endpoint is None:
            raise ValueError("subscribe needs the client's events_endpoint")
        types = tuple(prefix.encode() for prefix in prefixes)
        _checked(wire.Command.SUBSCRIBE, wire.Subscribe(types=types))
        subscription = Subscription(self._loop, self._context, self.events_endpoint, types,
                                    self._subscriptions, timeout=timeout,
                                    max_buffered=max_buffered)
        acked: Future[None] = Future()
        self._call_soon(lambda: subscription._io_open(acked, ack_timeout_ms / 1000))
        acked.result()
        return subscription

    # ------------------------------------------------------------ lifetime

    def close(self, timeout: float = 5.0) -> None:
        """Stop the client: outstanding tasks fail with :class:`CancelledError`.

        When tasks are outstanding the broker is told (DISCONNECT) so it
        drops them. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._loop.call_soon(self._io_close)
        if self._loop.join(timeout) and self._owns_context:
            self._context.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ user-thread helpers

    def _task(self, service: str, payload: Payload, *,
              timeout_ms: int = wire.DEFAULT_TIMEOUT_MS, retries: int = 0,
              backoff_ms: int = wire.DEFAULT_BACKOFF_MS, priority: int = 0,
              headers: Optional[Mapping[str, str]] = None,
              cache: Optional[Mapping[str, Any]] = None, fallback: Optional[str] = None,
              task_id: Optional[str] = None) -> _Task:
        """Build, encode and check one task (in the caller's thread)."""
        task_id = task_id or f"{self._id_prefix}-{next(self._numbers)}"
        try:
            policy = None if cache is None else wire.encode_cache_policy(cache)
        except ValueError as exc:
            raise InvalidError(str(exc), task_id=task_id) from None
        body = wire.Submit(
            id=task_id.encode(),
            service=service.encode(),
            payload=_as_bytes(payload),
            timeout_ms=timeout_ms,
            retries=retries,
            backoff_ms=backoff_ms,
            priority=priority,
            headers=tuple((k.encode(), v.encode()) for k, v in (headers or {}).items()),
            cache=policy,
            fallback=(fallback or "").encode(),
        )
        frame = _checked(wire.Command.SUBMIT, body, task_id=task_id)
        return _Task(body.id, frame, timeout_ms, TaskFuture(task_id))

    def _submit_all(self, tasks: list[_Task]) -> list[TaskFuture]:
        """Reserve the tasks' ids and hand them to the I/O thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            ids = [task.future.task_id for task in tasks]
            if len(set(ids)) != len(ids) or not self._ids.isdisjoint(ids):
                raise InvalidError("a task id is already outstanding")
            self._ids.update(ids)
        self._loop.call_soon(lambda: self._io_submit(tasks))
        return [task.future for task in tasks]

    def _call_soon(self, call: Any) -> None:
        """Run ``call`` on the I/O thread; RuntimeError once the client is closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
        self._loop.call_soon(call)

    # ------------------------------------------------------------ loop thread

    def _io_connect(self) -> None:
        """Open a new DEALER (same routing id) in place of the old one."""
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._sock.close()
        self._sock = dealer(self._context, self.endpoint, routing_id=self._routing_id,
                            reconnect=False)
        self._loop.add_reader(self._sock, self._io_on_message)
        self._last_heard = time.monotonic()

    def _io_reconnect(self, reason: str) -> None:
        """Open a new connection and resend every outstanding task (8.3)."""
        log.info("reconnecting to %s (%s); resending %d tasks",
                 self.endpoint, reason, len(self._tasks))
        self._io_connect()
        self._outbox.clear()
        for chunk in wire.batches([task.body for task in self._tasks.values()]):
            if not self._io_try_send(wire.Command.SUBMIT, chunk):
                return  # no connection yet either: the silence rule retries

    def _io_try_send(self, command: wire.Command, bodies: list[bytes]) -> bool:
        """Send without blocking; False when there is no connection to take it."""
        assert self._sock is not None
        try:
            self._sock.send_multipart([wire.header(wire.Role.CLIENT, command), *bodies],
                                      zmq.DONTWAIT)
        except zmq.Again:
            return False
        return True

    def _io_send(self, command: wire.Command, bodies: list[bytes]) -> None:
        """Send; on a lost connection reconnect (resending every task), then try once more."""
        if not self._io_try_send(command, bodies):
            self._io_reconnect("the connection is gone")
            self._io_try_send(command, bodies)

    @property
    def _io_busy(self) -> bool:
        """Whether anything waits for the broker (tasks or event acknowledgements)."""
        return bool(self._tasks or self._acks)

    def _io_submit(self, tasks: list[_Task]) -> None:
        """Take in new tasks: they leave in one batch at the end of this turn."""
        if not self._io_busy:
            self._last_heard = time.monotonic()  # silence counts from now
        now = time.monotonic()
        for task in tasks:
            self._tasks[task.id] = task
            give_up_at = now + (task.timeout_ms + wire.GIVE_UP_SLACK_MS) / 1000
            heapq.heappush(self._give_up, (give_up_at, id(task), task))
        self._outbox.extend(tasks)

    def _io_publish_confirmed(self, seq: int, wait: _AckWait, frame: bytes) -> None:
        """Send an event and wait (in the tick) for its PUBLISH_ACK."""
        if not self._io_busy:
            self._last_heard = time.monotonic()
        self._acks[seq] = wait
        self._io_send(wire.Command.PUBLISH, [frame])

    def _io_flush(self) -> None:
        """Send the tasks submitted since the last turn, batched."""
        bodies = [task.body for task in self._outbox if task.id in self._tasks]
        self._outbox.clear()
        for chunk in wire.batches(bodies):
            if not self._io_try_send(wire.Command.SUBMIT, chunk):
                self._io_reconnect("the connection is gone")
                return

    def _io_tick(self, now: float) -> None:
        """Send new tasks, give up on overdue ones, heartbeat or reconnect (8.3)."""
        self._io_flush()
        while self._give_up and self._give_up[0][0] <= now:
            task = heapq.heappop(self._give_up)[2]
            if self._tasks.get(task.id) is task:
                self._io_finish(task, BrokerUnreachableError(
                    "no reply from broker", task_id=task.future.task_id))
        for seq, wait in list(self._acks.items()):
            if now >= wait.deadline:
                del self._acks[seq]
                wait.future.set_exception(BrokerUnreachableError("no PUBLISH_ACK from broker"))
        for subscription in list(self._subscriptions):
            subscription._io_tick(now)
        if not self._io_busy:
            return
        silent = now - self._last_heard
        if silent >= LIVENESS_S:
            self._io_reconnect(f"broker silent for {silent:.1f} s")
        elif silent >= INTERVAL_S and now - self._last_heartbeat >= INTERVAL_S:
            self._last_heartbeat = now
            self._io_send(wire.Command.HEARTBEAT, [])

    def _io_finish(self, task: _Task, outcome: Union[Result, YardError]) -> None:
        """End a task with its Result or error."""
        del self._tasks[task.id]
        with self._lock:
            self._ids.discard(task.future.task_id)
        if isinstance(outcome, Result):
            task.future.set_result(outcome)
        else:
            task.future.set_exception(outcome)

    def _io_on_message(self, frames: list[bytes]) -> None:
        """Dispatch one message from the broker."""
        self._last_heard = time.monotonic()
        command = read_command(frames)
        if command is None:
            return
        if command is wire.Command.RESULT:
            for frame in frames[1:]:
                self._io_on_result(frame)
        elif command is wire.Command.HEARTBEAT:
            pass  # a sign of life, already counted
        elif command is wire.Command.DISCONNECT:
            self._io_reconnect("the broker does not know this client")
        elif command is wire.Command.ERROR:
            self._io_on_error(frames[1])
        elif command is wire.Command.PUBLISH_ACK:
            for frame in frames[1:]:
                self._io_on_publish_ack(frame)
        else:
            log.warning("discarding %s, not a command for clients", command.name)

    def _io_on_result(self, frame: bytes) -> None:
        """One RESULT body: end its task (the first result wins)."""
        try:
            body = wire.decode_body(wire.Role.BROKER, wire.Command.RESULT, frame)
        except wire.WireError as exc:
            task = self._tasks.get(exc.id) if exc.id is not None else None
            if task is None:
                log.warning("discarding an undecodable RESULT: %s", exc)
            else:
                self._io_finish(task, InvalidError(f"bad result from broker: {exc}",
                                                   task_id=task.future.task_id))
            return
        assert isinstance(body, wire.BrokerResult)
        task = self._tasks.get(body.id)
        if task is None:
            return  # late or extra: the first result won
        task_id = task.future.task_id
        if body.status is wire.Status.OK:
            self._io_finish(task, Result(
                id=task_id, status=body.status, payload=body.payload or b"",
                attempts=body.attempts, queue_us=body.queue_us, run_us=body.run_us,
                total_us=body.total_us, cached=body.cached))
        else:
            self._io_finish(task, error_for(
                body.status, body.error.decode("utf-8", "replace") or body.status.value,
                task_id=task_id, attempts=body.attempts, retry_after_ms=body.retry_after_ms))

    def _io_on_error(self, frame: bytes) -> None:
        """An ERROR: end the task it names, or every task on bad_version."""
        got = read_error(frame)
        if got is None:
            return
        body, text = got
        task = self._tasks.get(body.id) if body.id else None
        if task is not None:
            self._io_finish(task, InvalidError(text, task_id=task.future.task_id))
        elif body.code == b"bad_version":
            for task in list(self._tasks.values()):
                self._io_finish(task, InvalidError(text, task_id=task.future.task_id))
        else:
            log.warning("the broker refused a message: %s", text)

    def _io_on_publish_ack(self, frame: bytes) -> None:
        """One PUBLISH_ACK body: settle the publisher waiting for it."""
        try:
            body = wire.decode_body(wire.Role.BROKER, wire.Command.PUBLISH_ACK, frame)
        except wire.WireError as exc:
            log.warning("discarding an undecodable PUBLISH_ACK: %s", exc)
            return
        assert isinstance(body, wire.PublishAck)
        wait = self._acks.pop(body.seq, None)
        if wait is None:
            return
        if body.status is wire.Status.OK:
            wait.future.set_result(None)
        else:
            wait.future.set_exception(InvalidError(body.error.decode("utf-8", "replace")))

    def _io_close(self) -> None:
        """Cancel everything outstanding, tell the broker, close the sockets, stop."""
        had_tasks = bool(self._tasks)
        for task in list(self._tasks.values()):
            self._io_finish(task, CancelledError("client closed", task_id=task.future.task_id))
        for wait in self._acks.values():
            wait.future.set_exception(CancelledError("client closed"))
        self._acks.clear()
        for subscription in list(self._subscriptions):
            subscription._io_close()
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            if had_tasks:  # the broker drops them (5.8); give the message a moment to leave
                self._io_try_send(wire.Command.DISCONNECT, [])
                self._sock.close(linger=DISCONNECT_LINGER_MS)
            else:
                self._sock.close()
            self._sock = None
        self._loop.stop()


def _checked(command: wire.Command, body: wire.Body, *, task_id: Optional[str] = None) -> bytes:
    """``body`` encoded for role C; InvalidError if the broker would refuse it."""
    try:
        return wire.encode_checked(wire.Role.CLIENT, command, body)
    except wire.WireError as exc:
        raise InvalidError(str(exc), task_id=task_id) from None


def _outcome(future: TaskFuture) -> Union[Result, YardError]:
    """A finished task's Result, or the YardError it ended with."""
    try:
        return future.result()
    except YardError as exc:
        return exc
