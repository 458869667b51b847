"""The event bus (PROTOCOL.md 5.11, 8.7): events and subscriptions."""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional, Union

import msgpack
import zmq

from . import wire
from ._loop import (DISCONNECT_LINGER_MS, INTERVAL_S, LIVENESS_S, EventLoop, dealer, read_command,
                    read_error)
from .errors import BrokerUnreachableError, CancelledError, TimeoutError, YardError

log = logging.getLogger("yard")



@dataclass(frozen=True)
class Event:
    """One event as a subscriber receives it.

    ``payload`` is the decoded msgpack value (``None`` for no payload or a nil
    one), ``ts_us`` wall-clock microseconds since the epoch, and ``sn`` this
    subscriber's delivery number.
    """

    type: str
    source: str
    ts_us: int
    payload: Any
    trace_id: str
    meta: dict[str, str]
    sn: int


def _text(value: bytes) -> str:
    """Peer bytes as text, undecodable bytes replaced."""
    return value.decode("utf-8", "replace")


def event_body(type: str, payload: Any = None, *, source: Optional[str] = None,
               trace_id: Optional[str] = None, meta: Optional[Mapping[str, str]] = None,
               seq: int = 0) -> wire.Event:
    """A PUBLISH body; ``payload`` (any msgpack-able value) is packed, ``None`` means none.

    A non-zero ``seq`` asks the broker for a PUBLISH_ACK.
    """
    return wire.Event(
        type=type.encode(),
        source=(source or "").encode(),
        payload=None if payload is None else msgpack.packb(payload, use_bin_type=True),
        trace_id=(trace_id or "").encode(),
        meta=tuple((k.encode(), v.encode()) for k, v in (meta or {}).items()),
        seq=seq,
        ack=seq > 0,
    )


def _from_wire(body: wire.Event) -> Event:
    """The subscriber's view of a delivered event (payload decoded)."""
    payload = None
    if body.payload is not None:
        payload = msgpack.unpackb(body.payload, raw=False, strict_map_key=False,
                                  unicode_errors="replace")
    return Event(
        type=_text(body.type),
        source=_text(body.source),
        ts_us=body.ts_us,
        payload=payload,
        trace_id=_text(body.trace_id),
        meta={_text(k): _text(v) for k, v in body.meta},
        sn=body.sn,
    )


class Subscription(Iterator[Event]):
    """Events whose type starts with one of the subscribed prefixes.

    Iterate it (each ``next`` waits at most ``timeout`` seconds, then raises
    :class:`yard.TimeoutError`; ``None`` waits for ever), or call
    :meth:`get`. Iteration ends once the subscription is closed and its
    buffer is empty.

    ``missed`` counts events lost to this subscriber: gaps in the broker's
    ``sn`` numbering (the broker dropped them because this subscriber was
    slow) plus events dropped here because more than ``max_buffered`` were
    waiting to be read. The subscription re-subscribes by itself when the
    broker restarts or falls silent (PROTOCOL.md 5.11); events published
    while it was away are not recovered.

    Create it with :meth:`yard.Client.subscribe`.
    """

    def __init__(self, loop: EventLoop, context: zmq.Context, endpoint: str,
                 types: tuple[bytes, ...], registry: set[Subscription], *,
                 timeout: Optional[float], max_buffered: int) -> None:
        self.types = tuple(t.decode() for t in types)
        self.timeout = timeout
        self.missed = 0
        self._loop = loop
        self._context = context
        self._endpoint = endpoint
        self._frames = [wire.header(wire.Role.CLIENT, wire.Command.SUBSCRIBE),
                        wire.encode_checked(wire.Role.CLIENT, wire.Command.SUBSCRIBE,
                                            wire.Subscribe(types=types))]
        self._routing_id = bytes([os.urandom(1)[0] | 1]) + os.urandom(15)
        self._registry = registry
        self._cond = threading.Condition()
        self._items: collections.deque[Union[Event, YardError]] = collections.deque()
        self._max_buffered = max_buffered
        self._closed = False
        # Owned by the loop thread:
        self._sock: Optional[zmq.Socket] = None
        self._acked: Optional[Future[None]] = None
        self._ack_deadline = 0.0
        self._last_heard = 0.0
        self._last_heartbeat = 0.0
        self._last_sn = 0

    # ------------------------------------------------------------ user side

    def get(self, timeout: Optional[float] = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds (``None``: for ever).

        Raises :class:`yard.TimeoutError` when none came in time,
        :class:`yard.CancelledError` once closed and drained, and the
        :class:`yard.YardError` the broker answered if it refused a
        re-subscription.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                raise TimeoutError(f"no event within {timeout} s")
            if not self._items:
                raise CancelledError("subscription closed")
            item = self._items.popleft()
        if isinstance(item, YardError):
            raise item
        return item

    def __next__(self) -> Event:
        try:
            return self.get(self.timeout)
        except CancelledError:
            raise StopIteration from None

    def close(self) -> None:
        """Leave the event bus (DISCONNECT) and end iteration. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._loop.call_soon(self._io_close)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _deliver(self, item: Union[Event, YardError]) -> None:
        """Buffer an item for the reader, or count it missed if the buffer is full."""
        with self._cond:
            if len(self._items) >= self._max_buffered:
                self.missed += 1
                return
            self._items.append(item)
            self._cond.notify()

    # ------------------------------------------------------------ loop side

    def _io_open(self, acked: Future[None], ack_timeout_s: float) -> None:
        """Connect, SUBSCRIBE, and resolve ``acked`` on the broker's HEARTBEAT."""
        self._acked = acked
        self._ack_deadline = time.monotonic() + ack_timeout_s
        self._registry.add(self)
        self._io_connect()

    def _io_connect(self) -> None:
        """A new connection (same routing id) and a SUBSCRIBE on it."""
        self._io_drop_socket()
        self._sock = dealer(self._context, self._endpoint, routing_id=self._routing_id,
                            reconnect=False)
        self._loop.add_reader(self._sock, self._io_on_message)
        self._last_heard = self._last_heartbeat = time.monotonic()
        self._io_try_send(self._frames)  # if this fails, silence makes us try again

    def _io_drop_socket(self, linger_ms: int = 0) -> None:
        """Close the current connection, if any."""
        if self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._sock.close(linger=linger_ms)
            self._sock = None

    def _io_try_send(self, frames: list[bytes]) -> bool:
        """Send without blocking; False when there is no connection to take it."""
        assert self._sock is not None
        try:
            self._sock.send_multipart(frames, zmq.DONTWAIT)
        except zmq.Again:
            return False
        return True

    def _io_close(self) -> None:
        """Leave the bus (DISCONNECT) and wake every reader."""
        if self._sock is not None:
            self._io_try_send([wire.header(wire.Role.CLIENT, wire.Command.DISCONNECT)])
            self._io_drop_socket(linger_ms=DISCONNECT_LINGER_MS)
        self._registry.discard(self)
        self._io_fail_ack(CancelledError("subscription closed"))
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _io_fail_ack(self, error: YardError) -> None:
        """Fail a subscribe() still waiting for the broker's acknowledgement."""
        if self._acked is not None:
            self._acked.set_exception(error)
            self._acked = None

    def _io_tick(self, now: float) -> None:
        """Acknowledgement deadline, heartbeats and re-subscription on silence."""
        if self._acked is not None and now >= self._ack_deadline:
            self._io_fail_ack(BrokerUnreachableError("no answer to SUBSCRIBE from the broker"))
            self._io_close()
            return
        silent = now - self._last_heard
        if silent >= LIVENESS_S:
            log.info("events endpoint silent for %.1f s; subscribing again", silent)
            self._io_connect()
        elif silent >= INTERVAL_S and now - self._last_heartbeat >= INTERVAL_S:
            # The broker answers HEARTBEAT, or DISCONNECT if it restarted (5.11).
            self._last_heartbeat = now
            if not self._io_try_send([wire.header(wire.Role.CLIENT, wire.Command.HEARTBEAT)]):
                log.info("events connection lost; subscribing again")
                self._io_connect()

    def _io_on_message(self, frames: list[bytes]) -> None:
        """Dispatch one message from the events endpoint."""
        self._last_heard = time.monotonic()
        command = read_command(frames, "on the events endpoint")
        if command is None:
            return
        if command is wire.Command.PUBLISH:
            for frame in frames[1:]:
                self._io_on_event(frame)
        elif command is wire.Command.HEARTBEAT:
            if self._acked is not None:
                self._acked.set_result(None)
                self._acked = None
        elif command is wire.Command.DISCONNECT:
            log.info("the broker forgot this subscriber (restart?); subscribing again")
            self._last_sn = 0  # a subscriber the broker does not know starts again at sn 1
            self._io_connect()
        elif command is wire.Command.ERROR:
            self._io_on_error(frames[1])
        else:
            log.warning("discarding %s on the events endpoint", command.name)

    def _io_on_event(self, frame: bytes) -> None:
        """One delivered event: count any sn gap, buffer it."""
        try:
            body = wire.decode_body(wire.Role.BROKER, wire.Command.PUBLISH, frame)
        except wire.WireError as exc:
            # Its sn is lost with it: the next event's gap counts it as missed.
            log.warning("discarding an event: %s", exc)
            return
        assert isinstance(body, wire.Event)
        if body.sn > self._last_sn + 1:
            self.missed += body.sn - self._last_sn - 1
        # An sn at or below the last one means the broker numbers afresh.
        self._last_sn = body.sn
        self._deliver(_from_wire(body))

    def _io_on_error(self, frame: bytes) -> None:
        """An ERROR: the broker refused this subscriber (e.g. ``limit``)."""
        got = read_error(frame)
        if got is None:
            return
        error = YardError(got[1])
        if self._acked is not None:
            self._io_fail_ack(error)
            self._io_close()
        else:
            log.warning("the broker refused this subscriber: %s", error)
            self._deliver(error)
