"""The YARD/1 wire format (PROTOCOL.md sections 4, 5, 7 and 9).

A message is a header frame followed by 0..256 body frames. Each body is
one msgpack map, represented here by a frozen dataclass per body kind. Bytes
fields (ids, names, texts) stay ``bytes``: the protocol lets an ``id`` be any
value. :func:`encode` writes the canonical bytes (key order, defaults left
out, shortest forms) that ``proto/vectors`` pins down; :func:`decode` checks
every rule a receiver must check and raises :class:`WireError` naming the
first breach, the way PROTOCOL.md 9 and ``proto/vectors/README.md`` order
them: header, then body count, then each body in turn.

``str`` values are not checked for UTF-8 (rule D9): the vectors carry a
non-UTF-8 ``id`` (``submit_binary``) and the broker forwards what it was given.
"""

from __future__ import annotations

import abc
import enum
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Optional, Union

import msgpack

from ._msgpack import (
    Kind,
    MsgpackError,
    Node,
    array_header,
    map_header,
    pack_bin,
    pack_bool,
    pack_int,
    pack_str,
    read_map,
)

MAGIC = 0x59
VERSION = 1

MAX_BATCH = 256
MAX_MSGSIZE = 16 * 1024 * 1024
MAX_BODY = 4 * 1024 * 1024 + 64 * 1024
MAX_PAYLOAD = 4 * 1024 * 1024
MAX_EVENT_PAYLOAD = 1024 * 1024
MAX_ID = 128
MAX_SERVICE = 128
MAX_NAME = 128
MAX_CODE = 64
MAX_ERROR = 4096
MAX_HEADERS = 32
MAX_HEADER_KEY = 64
MAX_HEADER_VALUE = 1024
MAX_TYPES = 32
MAX_OBJECTS = 16
MAX_CAPACITY = 10000
MAX_PRIORITY = 9
MAX_RETRIES = 16
MAX_TIMEOUT_MS = 86_400_000
MAX_BACKOFF_MS = 60_000
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_BACKOFF_MS = 100
HEARTBEAT_INTERVAL_MS = 1000
HEARTBEAT_LIVENESS = 3
GIVE_UP_SLACK_MS = 2000

_U32 = 2**32 - 1
_U64 = 2**64 - 1
_NAME_CHARS = re.compile(rb"[A-Za-z0-9._:-]*")


class Role(enum.IntEnum):
    """The sender's role, byte 1 of the header."""

    CLIENT = 0x43
    WORKER = 0x57
    BROKER = 0x42


class Command(enum.IntEnum):
    """Byte 3 of the header (PROTOCOL.md 5.1)."""

    SUBMIT = 0x01
    RESULT = 0x02
    CANCEL = 0x03
    READY = 0x04
    TASK = 0x05
    HEARTBEAT = 0x06
    DISCONNECT = 0x07
    ERROR = 0x08
    PUBLISH = 0x10
    PUBLISH_ACK = 0x11
    SUBSCRIBE = 0x12
    CHUNK = 0x20
    CREDIT = 0x21
    STREAM_END = 0x22


class Status(enum.StrEnum):
    """A RESULT or PUBLISH_ACK status (PROTOCOL.md 6.1). The set is closed in YARD/1."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    REJECTED = "rejected"
    CIRCUIT_OPEN = "circuit_open"
    CANCELLED = "cancelled"
    SHUTDOWN = "shutdown"
    INVALID = "invalid"


class Fault(enum.Enum):
    """What a receiver found wrong, named after the C errors of the vectors."""

    HEADER = "YARD_E_HEADER"
    VERSION = "YARD_E_VERSION"
    ROLE = "YARD_E_ROLE"
    UNKNOWN_CMD = "YARD_E_UNKNOWN_CMD"
    FRAMES = "YARD_E_FRAMES"
    MALFORMED = "YARD_E_MALFORMED"
    TOO_LARGE = "YARD_E_TOO_LARGE"
    TYPE = "YARD_E_TYPE"
    RANGE = "YARD_E_RANGE"
    MISSING = "YARD_E_MISSING"

    @property
    def code(self) -> str:
        """The ERROR code of PROTOCOL.md 6.2 this fault is reported as."""
        return _FAULT_CODES[self]


_FAULT_CODES = {
    Fault.HEADER: "malformed",
    Fault.VERSION: "bad_version",
    Fault.ROLE: "malformed",
    Fault.UNKNOWN_CMD: "unknown_command",
    Fault.FRAMES: "bad_frames",
    Fault.MALFORMED: "malformed",
    Fault.TOO_LARGE: "too_large",
    Fault.TYPE: "bad_field",
    Fault.RANGE: "bad_field",
    Fault.MISSING: "bad_field",
}


class WireError(ValueError):
    """A message or body that breaks a rule of the protocol.

    ``id`` and ``job`` are the body's task id and job handle when they could
    still be read (a sound map holding the key once with a valid value), so
    a receiver can answer that task (PROTOCOL.md 8.2, 8.3, 9).
    """

    def __init__(self, fault: Fault, detail: str, *, id: Optional[bytes] = None,
                 job: Optional[int] = None) -> None:
        super().__init__(f"{fault.code}: {detail}")
        self.fault = fault
        self.detail = detail
        self.id = id
        self.job = job


class _Slow(Exception):
    """Raised by a field type's fast read: leave this body to the full decoder."""


class _Invalid(Exception):
    """Raised by field types; the schema turns it into a WireError."""

    def __init__(self, fault: Fault, detail: str) -> None:
        super().__init__(detail)
        self.fault = fault
        self.detail = detail


Headers = tuple[tuple[bytes, bytes], ...]


# ---------------------------------------------------------------- bodies

@dataclass(frozen=True, kw_only=True)
class Submit:
    """SUBMIT body, C -> B (5.2). ``cache`` is the raw msgpack policy map."""

    id: bytes
    service: bytes
    payload: Optional[bytes] = None
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    retries: int = 0
    backoff_ms: int = DEFAULT_BACKOFF_MS
    priority: int = 0
    headers: Headers = ()
    cache: Optional[bytes] = None
    fallback: bytes = b""


@dataclass(frozen=True, kw_only=True)
class WorkerResult:
    """RESULT body, W -> B (5.3)."""

    job: int
    status: Status
    payload: Optional[bytes] = None
    error: bytes = b""
    run_us: int = 0


@dataclass(frozen=True, kw_only=True)
class BrokerResult:
    """RESULT body, B -> C (5.3)."""

    id: bytes
    status: Status
    payload: Optional[bytes] = None
    error: bytes = b""
    cached: bool = False
    attempts: int = 0
    queue_us: int = 0
    run_us: int = 0
    total_us: int = 0
    retry_after_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class CancelTask:
    """CANCEL body, C -> B (5.4)."""

    id: bytes


@dataclass(frozen=True, kw_only=True)
class CancelJob:
    """CANCEL body, B -> W (5.4)."""

    job: int


@dataclass(frozen=True, kw_only=True)
class Ready:
    """READY body, W -> B (5.5). ``capacity`` 0 means drain."""

    service: bytes
    capacity: int
    name: bytes = b""
    pid: int = 0
    version: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Task:
    """TASK body, B -> W (5.6)."""

    job: int
    id: bytes
    service: bytes
    payload: Optional[bytes] = None
    timeout_ms: int
    attempt: int
    headers: Headers = ()


@dataclass(frozen=True, kw_only=True)
class Probe:
    """HEARTBEAT body, B -> W: a probe to answer at once (5.7)."""

    probe: int


@dataclass(frozen=True, kw_only=True)
class Report:
    """HEARTBEAT body, W -> B: the worker's health (5.7, 8.8).

    ``objects`` is the raw msgpack map of object counts, if any.
    """

    probe: int = 0
    uptime_ms: int = 0
    version: bytes = b""
    rss: int = 0
    rss_peak: int = 0
    rss_growth: int = 0
    growth_window_ms: int = 0
    loop_iterations: int = 0
    loop_busy_us: int = 0
    loop_max_us: int = 0
    loop_max_lag_us: int = 0
    loop_slow: int = 0
    loop_stalls: int = 0
    loop_last_stall_us: int = 0
    loop_stall_age_ms: int = 0
    loop_slow_ms: int = 0
    loop_stall_ms: int = 0
    in_flight: int = 0
    pending: int = 0
    objects: Optional[bytes] = None


@dataclass(frozen=True, kw_only=True)
class Disconnect:
    """DISCONNECT body (5.8): informational only."""

    code: bytes
    message: bytes


@dataclass(frozen=True, kw_only=True)
class ErrorBody:
    """ERROR body, B -> C or W (5.9)."""

    code: bytes
    message: bytes
    id: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Event:
    """PUBLISH body (5.11).

    ``payload`` is one raw msgpack value (``b"\\xc0"`` is nil) or ``None`` for
    no payload. Publishers set ``seq`` and ``ack``; the broker sets ``sn``.
    """

    type: bytes
    source: bytes = b""
    ts_us: int = 0
    payload: Optional[bytes] = None
    trace_id: bytes = b""
    meta: Headers = ()
    seq: int = 0
    ack: bool = False
    sn: int = 0


@dataclass(frozen=True, kw_only=True)
class PublishAck:
    """PUBLISH_ACK body, B -> C or W (5.11)."""

    seq: int
    status: Status
    error: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Subscribe:
    """SUBSCRIBE body, subscriber -> B (5.11). No prefix, or an empty one, means all."""

    types: tuple[bytes, ...]


Body = Union[Submit, WorkerResult, BrokerResult, CancelTask, CancelJob, Ready, Task,
             Probe, Report, Disconnect, ErrorBody, Event, PublishAck, Subscribe]


@dataclass(frozen=True)
class Message:
    """One multipart message as the DEALER sees it: no routing id."""

    role: Role
    command: Command
    bodies: tuple[Body, ...] = ()


# ---------------------------------------------------------------- field types

class _Type(abc.ABC):
    """How one field is read, range-checked and written."""

    @abc.abstractmethod
    def read(self, node: Node, frame: bytes) -> Any:
        """Convert ``node``, raising _Invalid on a type breach (D7)."""

    def check(self, value: Any) -> None:
        """Raise _Invalid when ``value`` is out of range (D12); only for a
        value that is not the field's default (D13)."""

    @abc.abstractmethod
    def write(self, value: Any) -> bytes:
        """The value's canonical msgpack bytes."""

    def fast(self, value: Any) -> Any:
        """What :meth:`read` returns, from the value msgpack's own decoder gave
        (see :meth:`_Schema.decode`); raise _Slow for anything :meth:`read`
        might refuse or read differently."""
        raise _Slow


def _want(node: Node, kind: Kind, what: str) -> Any:
    """``node``'s value if it is of ``kind``, else a type breach."""
    if node.kind is not kind:
        raise _Invalid(Fault.TYPE, f"is {node.kind.value}, not {what}")
    return node.value


def _check_name(value: bytes) -> None:
    """A range breach unless ``value`` uses only the service alphabet."""
    if not _NAME_CHARS.fullmatch(value):
        raise _Invalid(Fault.RANGE, "has characters outside [A-Za-z0-9._:-]")


class _Str(_Type):
    """A str field of ``low``..``high`` bytes, optionally of the service alphabet."""

    def __init__(self, low: int, high: int, *, name: bool = False,
                 over: Fault = Fault.RANGE) -> None:
        self.low, self.high, self.name, self.over = low, high, name, over

    def read(self, node: Node, frame: bytes) -> bytes:
        return _want(node, Kind.STR, "a str")

    def check(self, value: bytes) -> None:
        if len(value) < self.low:
            raise _Invalid(Fault.RANGE, f"is shorter than {self.low} bytes")
        if len(value) > self.high:
            raise _Invalid(self.over, f"is longer than {self.high} bytes")
        if self.name:
            _check_name(value)

    def write(self, value: bytes) -> bytes:
        return pack_str(value)

    def fast(self, value: Any) -> bytes:
        if type(value) is not str:
            raise _Slow
        return value.encode("utf-8", "surrogateescape")


class _Payload(_Type):
    """A task payload: bin, or str taken as raw bytes (D10)."""

    def read(self, node: Node, frame: bytes) -> bytes:
        if node.kind not in (Kind.BIN, Kind.STR):
            raise _Invalid(Fault.TYPE, f"is {node.kind.value}, not bin or str")
        return node.value  # type: ignore[return-value]

    def check(self, value: bytes) -> None:
        if len(value) > MAX_PAYLOAD:
            raise _Invalid(Fault.TOO_LARGE, f"is longer than {MAX_PAYLOAD} bytes")

    def write(self, value: bytes) -> bytes:
        return pack_bin(value)

    def fast(self, value: Any) -> bytes:
        if type(value) is bytes:
            return value
        if type(value) is str:
            return value.encode("utf-8", "surrogateescape")
        raise _Slow


class _UInt(_Type):
    """An unsigned integer field in ``low``..``high``."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def read(self, node: Node, frame: bytes) -> int:
        return _want(node, Kind.INT, "an unsigned integer")

    def check(self, value: int) -> None:
        if not self.low <= value <= self.high:
            raise _Invalid(Fault.RANGE, f"out of range {self.low}..{self.high}")

    def write(self, value: int) -> bytes:
        return pack_int(value)

    def fast(self, value: Any) -> int:
        if type(value) is not int:  # a bool is an int to Python, not to msgpack
            raise _Slow
        return value


class _Bool(_Type):
    """A bool field."""

    def read(self, node: Node, frame: bytes) -> bool:
        return _want(node, Kind.BOOL, "a bool")

    def write(self, value: bool) -> bytes:
        return pack_bool(value)

    def fast(self, value: Any) -> bool:
        if type(value) is not bool:
            raise _Slow
        return value


class _Status(_Type):
    """A status string from a closed set."""

    def __init__(self, *allowed: Status) -> None:
        self.allowed = allowed

    def read(self, node: Node, frame: bytes) -> Status:
        text = _want(node, Kind.STR, "a str")
        for status in self.allowed:
            if text == status.value.encode():
                return status
        raise _Invalid(Fault.RANGE, f"is not one of {', '.join(self.allowed)}")

    def write(self, value: Status) -> bytes:
        return pack_str(value.value.encode())

    def fast(self, value: Any) -> Status:
        if type(value) is str:
            for status in self.allowed:
                if value == status.value:
                    return status
        raise _Slow


def _str_pairs(node: Node) -> list[tuple[bytes, Node]]:
    """A map's entries with str keys, each at most once (D2, D5)."""
    pairs = []
    seen = set()
    for key, value in _want(node, Kind.MAP, "a map"):
        if key.kind is not Kind.STR:
            raise _Invalid(Fault.MALFORMED, "has a key that is not a str")
        if key.value in seen:
            raise _Invalid(Fault.MALFORMED, f"has the key {key.value!r} twice")
        seen.add(key.value)
        pairs.append((key.value, value))
    return pairs


class _Headers(_Type):
    """``headers`` and event ``meta``: a map of str to str, in wire order."""

    def read(self, node: Node, frame: bytes) -> Headers:
        pairs = _str_pairs(node)
        if len(pairs) > MAX_HEADERS:
            raise _Invalid(Fault.TOO_LARGE, f"has more than {MAX_HEADERS} entries")
        result = []
        for key, value in pairs:
            if not key:
                raise _Invalid(Fault.RANGE, "has an empty key")
            if len(key) > MAX_HEADER_KEY:
                raise _Invalid(Fault.TOO_LARGE, f"has a key longer than {MAX_HEADER_KEY} bytes")
            if value.kind is not Kind.STR:
                raise _Invalid(Fault.TYPE, f"value of {key!r} is {value.kind.value}, not a str")
            if len(value.value) > MAX_HEADER_VALUE:  # type: ignore[arg-type]
                raise _Invalid(Fault.TOO_LARGE,
                               f"value of {key!r} is longer than {MAX_HEADER_VALUE} bytes")
            result.append((key, value.value))
        return tuple(result)  # type: ignore[arg-type]

    def write(self, value: Headers) -> bytes:
        return map_header(len(value)) + b"".join(pack_str(k) + pack_str(v) for k, v in value)

    def fast(self, value: Any) -> Headers:
        if type(value) is not list or len(value) > MAX_HEADERS:  # a map (see _fast_unpack)
            raise _Slow
        result = []
        seen = set()
        for key, item in value:
            if type(key) is not str or type(item) is not str or key in seen:
                raise _Slow
            seen.add(key)
            k = key.encode("utf-8", "surrogateescape")
            v = item.encode("utf-8", "surrogateescape")
            if not 1 <= len(k) <= MAX_HEADER_KEY or len(v) > MAX_HEADER_VALUE:
                raise _Slow
            result.append((k, v))
        return tuple(result)


class _Raw(_Type):
    """A value carried as its own bytes: a SUBMIT ``cache`` map, an event payload."""

    def __init__(self, *, map_only: bool, limit: int) -> None:
        self.map_only, self.limit = map_only, limit

    def read(self, node: Node, frame: bytes) -> bytes:
        if self.map_only:
            _want(node, Kind.MAP, "a map")
        raw = frame[node.start:node.end]
        if len(raw) > self.limit:
            raise _Invalid(Fault.TOO_LARGE, f"is longer than {self.limit} bytes encoded")
        return raw

    def write(self, value: bytes) -> bytes:
        return value


class _Objects(_Type):
    """A report's ``objects``: str -> uint, kept as its raw map bytes."""

    def read(self, node: Node, frame: bytes) -> bytes:
        pairs = _str_pairs(node)
        if len(pairs) > MAX_OBJECTS:
            raise _Invalid(Fault.TOO_LARGE, f"has more than {MAX_OBJECTS} entries")
        for name, count in pairs:
            if not 1 <= len(name) <= 64:
                raise _Invalid(Fault.RANGE, "has a name outside 1..64 bytes")
            _check_name(name)
            if _want(count, Kind.INT, "an unsigned integer") < 0:
                raise _Invalid(Fault.RANGE, f"count of {name!r} is negative")
        return frame[node.start:node.end]

    def write(self, value: bytes) -> bytes:
        return value


class _Types(_Type):
    """SUBSCRIBE ``types``: an array of type prefixes."""

    def read(self, node: Node, frame: bytes) -> tuple[bytes, ...]:
        items = _want(node, Kind.ARRAY, "an array")
        if len(items) > MAX_TYPES:
            raise _Invalid(Fault.TOO_LARGE, f"has more than {MAX_TYPES} prefixes")
        prefixes = []
        for item in items:
            prefix = _want(item, Kind.STR, "a str")
            if len(prefix) > MAX_SERVICE:
                raise _Invalid(Fault.TOO_LARGE, f"has a prefix longer than {MAX_SERVICE} bytes")
            _check_name(prefix)
            prefixes.append(prefix)
        return tuple(prefixes)

    def write(self, value: tuple[bytes, ...]) -> bytes:
        return array_header(len(value)) + b"".join(pack_str(p) for p in value)


# ---------------------------------------------------------------- schemas

@dataclass(frozen=True)
class _Field:
    """One key of a body: its type, whether required, its default."""

    key: str
    type: _Type
    required: bool = False
    default: Any = None
    # Defined for the command but not for this direction (D14): its type is
    # checked, then it is ignored, and it is never written.
    foreign: bool = False



class _Schema:
    """The fields of one body kind in one direction, in canonical order."""

    def __init__(self, cls: type, *fields_: _Field) -> None:
        self.cls = cls
        self.fields = fields_
        self.keys = {f.key.encode() for f in fields_}
        self.names = {f.key for f in fields_}
        assert {f.key for f in fields_ if not f.foreign} <= {f.name for f in fields(cls)}

    def validate(self, body: Any) -> None:
        """Check rules that span fields; raise _Invalid. None by default."""

    def decode(self, frame: bytes) -> Any:
        """Decode and check one body frame."""
        if len(frame) > MAX_BODY:
            raise WireError(Fault.TOO_LARGE, f"body of {len(frame)} bytes is over {MAX_BODY}")
        body = self._decode_fast(frame)
        if body is not None:
            return body
        try:
            root = read_map(frame)
        except MsgpackError as exc:
            raise WireError(Fault.TOO_LARGE if exc.too_large else Fault.MALFORMED,
                            exc.detail) from None
        pairs: list[tuple[Node, Node]] = root.value  # type: ignore[assignment]
        task_id, job = _readable_id(pairs), _readable_job(pairs)
        nodes: dict[bytes, Node] = {}
        for key, value in pairs:
            if key.kind is not Kind.STR:
                raise WireError(Fault.MALFORMED, "a body key is not a str", id=task_id, job=job)
            if key.value in self.keys:
                if key.value in nodes:
                    raise WireError(Fault.MALFORMED, f"key {key.value!r} appears twice",
                                    id=task_id, job=job)
                nodes[key.value] = value  # type: ignore[index]
        values = {}
        for f in self.fields:
            node = nodes.get(f.key.encode())
            try:
                if node is None:
                    if f.required:
                        raise _Invalid(Fault.MISSING, "is missing")
                    continue
                value = f.type.read(node, frame)
                if f.required or value != f.default:  # D13: a default means absent
                    f.type.check(value)
            except _Invalid as exc:
                raise WireError(exc.fault, f"{f.key} {exc.detail}", id=task_id, job=job) from None
            if not f.foreign:
                values[f.key] = value
        body = self.cls(**values)
        try:
            self.validate(body)
        except _Invalid as exc:
            raise WireError(exc.fault, exc.detail, id=task_id, job=job) from None
        return body

    def _decode_fast(self, frame: bytes) -> Any:
        """The body, decoded by msgpack's C decoder, when it is plainly sound.

        The fast path of :meth:`decode`: it accepts only a map of known,
        distinct str keys whose values have exactly the types and ranges the
        full decoder wants, and then returns what the full decoder would
        (the same types, values and defaults). Anything else (an unknown or
        repeated key, a type to look at closely, a value out of range, a
        frame msgpack refuses) returns None, and the full decoder reads the
        frame and names its fault as before. Such a body nests two levels at
        most and holds a few dozen elements, far inside the reader's bounds.
        """
        try:
            pairs = _fast_unpack(frame)
        except Exception:  # noqa: BLE001 - whatever msgpack refuses, the full decoder explains
            return None
        if type(pairs) is not list:  # maps come as lists of pairs, arrays as tuples
            return None
        given: dict[str, Any] = {}
        names = self.names
        for key, value in pairs:
            if type(key) is not str or key not in names or key in given:
                return None
            given[key] = value
        values = {}
        try:
            for f in self.fields:
                raw = given.get(f.key, _ABSENT)
                if raw is _ABSENT:
                    if f.required:
                        return None
                    continue
                value = f.type.fast(raw)
                if f.required or value != f.default:
                    f.type.check(value)
                if not f.foreign:
                    values[f.key] = value
            body = self.cls(**values)
            self.validate(body)
        except (_Slow, _Invalid):
            return None
        return body

    def encode(self, body: Any) -> bytes:
        """One body's canonical bytes."""
        if type(body) is not self.cls:
            raise TypeError(f"expected {self.cls.__name__}, got {type(body).__name__}")
        parts = []
        for f in self.fields:
            if f.foreign:
                continue
            value = getattr(body, f.key)
            if f.required or (value is not None and value != f.default):
                parts.append(pack_str(f.key.encode()) + f.type.write(value))
        return map_header(len(parts)) + b"".join(parts)


_ABSENT = object()


def _fast_unpack(frame: bytes) -> Any:
    """One msgpack object spanning ``frame``, maps as lists of pairs (so that
    repeated keys show), arrays as tuples, str as str (bytes that are not
    UTF-8 kept by surrogateescape), bin as bytes."""
    return msgpack.unpackb(frame, raw=False, use_list=False, object_pairs_hook=list,
                           unicode_errors="surrogateescape")


class _PublishedEventSchema(_Schema):
    """Events from publishers: ``ack`` needs a ``seq`` (5.11)."""

    def validate(self, body: Event) -> None:
        if body.ack and body.seq == 0:
            raise _Invalid(Fault.MISSING, "ack needs a seq above 0")


def _only(pairs: list[tuple[Node, Node]], key: bytes) -> Optional[Node]:
    """The value of ``key`` if the map holds it exactly once."""
    found = [value for k, value in pairs if k.kind is Kind.STR and k.value == key]
    return found[0] if len(found) == 1 else None


def _readable_id(pairs: list[tuple[Node, Node]]) -> Optional[bytes]:
    """The ``id`` as PROTOCOL.md 9 reads it: present once, a str of 1..128 bytes."""
    node = _only(pairs, b"id")
    if node is not None and node.kind is Kind.STR and 1 <= len(node.value) <= MAX_ID:  # type: ignore
        return node.value  # type: ignore[return-value]
    return None


def _readable_job(pairs: list[tuple[Node, Node]]) -> Optional[int]:
    """The ``job`` as PROTOCOL.md 8.2 reads it: present once, a uint >= 1."""
    node = _only(pairs, b"job")
    if node is not None and node.kind is Kind.INT and node.value >= 1:  # type: ignore[operator]
        return node.value  # type: ignore[return-value]
    return None


_ID = _Str(1, MAX_ID)
_SERVICE = _Str(1, MAX_SERVICE, name=True)
_TEXT = _Str(0, MAX_ERROR, over=Fault.TOO_LARGE)
_MESSAGE = _Str(1, MAX_ERROR, over=Fault.TOO_LARGE)
_CODE = _Str(1, MAX_CODE)
_NAME = _Str(0, MAX_NAME)
_U32_ANY = _UInt(0, _U32)
_U64_ANY = _UInt(0, _U64)
_JOB = _UInt(1, _U64)
_HEADERS = _Headers()

_SUBMIT = _Schema(
    Submit,
    _Field("id", _ID, required=True),
    _Field("service", _SERVICE, required=True),
    _Field("payload", _Payload()),
    _Field("timeout_ms", _UInt(1, MAX_TIMEOUT_MS), default=DEFAULT_TIMEOUT_MS),
    _Field("retries", _UInt(0, MAX_RETRIES), default=0),
    _Field("backoff_ms", _UInt(0, MAX_BACKOFF_MS), default=DEFAULT_BACKOFF_MS),
    _Field("priority", _UInt(0, MAX_PRIORITY), default=0),
    _Field("headers", _HEADERS, default=()),
    _Field("cache", _Raw(map_only=True, limit=MAX_BODY)),
    _Field("fallback", _SERVICE, default=b""),
)


def _result_schema(cls: type, *, statuses: _Status) -> _Schema:
    """RESULT: one key set, each direction writing its own keys (5.3, D14)."""
    mine = {f.name for f in fields(cls)}

    def field(key: str, type_: _Type, default: Any = None, *, required: bool = False) -> _Field:
        """A field, foreign unless this direction writes it."""
        return _Field(key, type_, required and key in mine, default, foreign=key not in mine)

    return _Schema(
        cls,
        field("job", _JOB, required=True),
        field("id", _ID, required=True),
        field("status", statuses, required=True),
        field("payload", _Payload()),
        field("error", _TEXT, b""),
        field("cached", _Bool(), False),
        field("attempts", _U32_ANY, 0),
        field("queue_us", _U64_ANY, 0),
        field("run_us", _U64_ANY, 0),
        field("total_us", _U64_ANY, 0),
        field("retry_after_ms", _U32_ANY, 0),
    )


_WORKER_RESULT = _result_schema(
    WorkerResult, statuses=_Status(Status.OK, Status.ERROR, Status.CANCELLED, Status.INVALID))
_BROKER_RESULT = _result_schema(BrokerResult, statuses=_Status(*Status))
_TASK = _Schema(
    Task,
    _Field("job", _JOB, required=True),
    _Field("id", _ID, required=True),
    _Field("service", _SERVICE, required=True),
    _Field("payload", _Payload()),
    _Field("timeout_ms", _UInt(0, MAX_TIMEOUT_MS), required=True),
    _Field("attempt", _UInt(1, _U32), required=True),
    _Field("headers", _HEADERS, default=()),
)
_READY = _Schema(
    Ready,
    _Field("service", _SERVICE, required=True),
    _Field("capacity", _UInt(0, MAX_CAPACITY), required=True),
    _Field("name", _NAME, default=b""),
    _Field("pid", _UInt(1, _U32), default=0),
    _Field("version", _NAME, default=b""),
)
_CANCEL_TASK = _Schema(CancelTask, _Field("id", _ID, required=True),
                       _Field("job", _JOB, foreign=True))
_CANCEL_JOB = _Schema(CancelJob, _Field("id", _ID, foreign=True),
                      _Field("job", _JOB, required=True))
_PROBE = _Schema(Probe, _Field("probe", _JOB, required=True))
_REPORT = _Schema(
    Report,
    _Field("probe", _U64_ANY, default=0),
    _Field("uptime_ms", _U64_ANY, default=0),
    _Field("version", _NAME, default=b""),
    *(_Field(key, _U64_ANY, default=0) for key in (
        "rss", "rss_peak", "rss_growth", "growth_window_ms", "loop_iterations",
        "loop_busy_us", "loop_max_us", "loop_max_lag_us", "loop_slow", "loop_stalls",
        "loop_last_stall_us", "loop_stall_age_ms", "loop_slow_ms", "loop_stall_ms")),
    _Field("in_flight", _U32_ANY, default=0),
    _Field("pending", _U32_ANY, default=0),
    _Field("objects", _Objects()),
)
_DISCONNECT = _Schema(Disconnect, _Field("code", _CODE, required=True),
                      _Field("message", _MESSAGE, required=True))
_ERROR = _Schema(ErrorBody, _Field("code", _CODE, required=True),
                 _Field("message", _MESSAGE, required=True), _Field("id", _ID, default=b""))


def _event_schema(cls: type[_Schema], *, delivery: bool) -> _Schema:
    """PUBLISH: publishers write ``seq`` and ``ack``, the broker writes ``sn``."""
    return cls(
        Event,
        _Field("type", _Str(1, MAX_SERVICE, name=True), required=True),
        _Field("source", _Str(0, MAX_ID), default=b""),
        _Field("ts_us", _U64_ANY, default=0),
        _Field("payload", _Raw(map_only=False, limit=MAX_EVENT_PAYLOAD)),
        _Field("trace_id", _Str(0, MAX_ID), default=b""),
        _Field("meta", _HEADERS, default=()),
        _Field("seq", _U64_ANY, default=0, foreign=delivery),
        _Field("ack", _Bool(), default=False, foreign=delivery),
        _Field("sn", _U64_ANY, required=delivery, default=0, foreign=not delivery),
    )


_PUBLISHED_EVENT = _event_schema(_PublishedEventSchema, delivery=False)
_DELIVERED_EVENT = _event_schema(_Schema, delivery=True)
_PUBLISH_ACK = _Schema(
    PublishAck,
    _Field("seq", _U64_ANY, required=True),
    _Field("status", _Status(Status.OK, Status.INVALID), required=True),
    _Field("error", _TEXT, default=b""),
)
_SUBSCRIBE = _Schema(Subscribe, _Field("types", _Types(), required=True))


@dataclass(frozen=True)
class _Rule:
    """What a (role, command) pair carries: how many bodies, and of which kind."""

    min_bodies: int
    max_bodies: int
    schema: Optional[_Schema]


_C, _W, _B = Role.CLIENT, Role.WORKER, Role.BROKER
_RULES: dict[tuple[Role, Command], _Rule] = {
    (_C, Command.SUBMIT): _Rule(1, MAX_BATCH, _SUBMIT),
    (_C, Command.CANCEL): _Rule(1, MAX_BATCH, _CANCEL_TASK),
    (_C, Command.HEARTBEAT): _Rule(0, 0, None),
    (_C, Command.DISCONNECT): _Rule(0, 1, _DISCONNECT),
    (_C, Command.PUBLISH): _Rule(1, MAX_BATCH, _PUBLISHED_EVENT),
    (_C, Command.SUBSCRIBE): _Rule(1, 1, _SUBSCRIBE),
    (_W, Command.READY): _Rule(1, 1, _READY),
    (_W, Command.RESULT): _Rule(1, MAX_BATCH, _WORKER_RESULT),
    (_W, Command.HEARTBEAT): _Rule(0, 1, _REPORT),
    (_W, Command.DISCONNECT): _Rule(0, 1, _DISCONNECT),
    (_W, Command.PUBLISH): _Rule(1, MAX_BATCH, _PUBLISHED_EVENT),
    (_B, Command.RESULT): _Rule(1, MAX_BATCH, _BROKER_RESULT),
    (_B, Command.TASK): _Rule(1, MAX_BATCH, _TASK),
    (_B, Command.CANCEL): _Rule(1, MAX_BATCH, _CANCEL_JOB),
    (_B, Command.HEARTBEAT): _Rule(0, 1, _PROBE),
    (_B, Command.DISCONNECT): _Rule(0, 1, _DISCONNECT),
    (_B, Command.ERROR): _Rule(1, 1, _ERROR),
    (_B, Command.PUBLISH): _Rule(1, MAX_BATCH, _DELIVERED_EVENT),
    (_B, Command.PUBLISH_ACK): _Rule(1, MAX_BATCH, _PUBLISH_ACK),
}


# ---------------------------------------------------------------- messages

def header(role: Role, command: Command) -> bytes:
    """The 4-byte header frame."""
    return bytes((MAGIC, role, VERSION, command))


def parse_header(frames: Sequence[bytes]) -> tuple[Role, Command]:
    """Check a message's header, its body count and total size.

    Returns the sender's role and the command. Bodies are checked one by one
    with :func:`decode_body`, so one bad body does not spoil the others.
    """
    if not frames:
        raise WireError(Fault.HEADER, "no header frame")
    head = frames[0]
    if len(head) != 4 or head[0] != MAGIC:
        raise WireError(Fault.HEADER, "header is not 4 bytes starting 0x59")
    try:
        role = Role(head[1])
    except ValueError:
        raise WireError(Fault.ROLE, f"unknown role 0x{head[1]:02x}") from None
    if head[2] != VERSION:
        raise WireError(Fault.VERSION, f"version {head[2]}, this peer speaks {VERSION}")
    rule = _RULES.get((role, head[3]))  # type: ignore[call-overload]
    if rule is None:
        raise WireError(Fault.UNKNOWN_CMD,
                        f"command 0x{head[3]:02x} is not valid for role {chr(role)}")
    count = len(frames) - 1
    command = Command(head[3])
    if not rule.min_bodies <= count <= rule.max_bodies:
        raise WireError(Fault.FRAMES, f"{command.name} takes {rule.min_bodies}.."
                                      f"{rule.max_bodies} bodies, not {count}")
    if sum(len(frame) for frame in frames[1:]) > MAX_MSGSIZE:
        raise WireError(Fault.TOO_LARGE, f"bodies over {MAX_MSGSIZE} bytes")
    return role, command


def decode_body(role: Role, command: Command, frame: bytes) -> Body:
    """Decode and check one body of a message whose header passed :func:`parse_header`."""
    schema = _RULES[(role, command)].schema
    assert schema is not None, "this command carries no body"
    return schema.decode(frame)


def decode(frames: Sequence[bytes]) -> Message:
    """Decode a whole message, raising :class:`WireError` at the first breach.

    A DISCONNECT body that does not decode is dropped, not refused (5.8).
    """
    role, command = parse_header(frames)
    bodies = []
    for frame in frames[1:]:
        try:
            bodies.append(decode_body(role, command, frame))
        except WireError:
            if command is not Command.DISCONNECT:
                raise
    return Message(role, command, tuple(bodies))


def encode_body(role: Role, command: Command, body: Body) -> bytes:
    """One body's canonical bytes, as ``role`` sends it with ``command``."""
    rule = _RULES.get((role, command))
    if rule is None or rule.schema is None:
        raise ValueError(f"{chr(role)} does not send {command.name} bodies")
    return rule.schema.encode(body)


def batches(bodies: Sequence[bytes]) -> Iterator[list[bytes]]:
    """Split encoded bodies into messages of at most 256 bodies and 16 MiB (4.6)."""
    batch: list[bytes] = []
    size = 0
    for body in bodies:
        if batch and (len(batch) == MAX_BATCH or size + len(body) > MAX_MSGSIZE):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += len(body)
    if batch:
        yield batch


def encode(message: Message) -> list[bytes]:
    """A message's frames: the header, then each body's canonical bytes."""
    frames = [header(message.role, message.command)]
    frames.extend(encode_body(message.role, message.command, body) for body in message.bodies)
    return frames


# ---------------------------------------------------------------- cache policy

_POLICY_LISTS = {"tags": 16, "key": 32, "exclude": 32, "headers": 32}


def encode_cache_policy(policy: Mapping[str, Any]) -> bytes:
    """A SUBMIT ``cache`` map from a policy dict (PROTOCOL.md 10b).

    Keys are written in the order of the 10b table (``ttl_ms``, ``tags``,
    ``key``, ``exclude``, ``headers``), ``ttl_ms`` only when not 0, lists
    whenever given (an empty ``key`` list is not the same as none). Raises
    ``ValueError`` for an unknown key, a wrong type or a value out of range.
    """
    unknown = set(policy) - {"ttl_ms", *_POLICY_LISTS}
    if unknown:
        raise ValueError(f"unknown cache policy keys: {', '.join(sorted(unknown))}")
    if "key" in policy and "exclude" in policy:
        raise ValueError("cache policy: key and exclude cannot be used together")
    parts = []
    ttl_ms = policy.get("ttl_ms", 0)
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) \
            or not 0 <= ttl_ms <= MAX_TIMEOUT_MS:
        raise ValueError(f"cache policy: ttl_ms must be an int in 0..{MAX_TIMEOUT_MS}")
    if ttl_ms:
        parts.append(pack_str(b"ttl_ms") + pack_int(ttl_ms))
    for name, most in _POLICY_LISTS.items():
        if name not in policy:
            continue
        items = policy[name]
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise ValueError(f"cache policy: {name} must be a list of str")
        encoded = [item.encode() for item in items if isinstance(item, str)]
        if len(encoded) != len(items) or len(items) > most \
                or not all(1 <= len(item) <= 128 for item in encoded):
            raise ValueError(f"cache policy: {name} takes at most {most} str of 1..128 bytes")
        parts.append(pack_str(name.encode()) + array_header(len(encoded))
                     + b"".join(pack_str(item) for item in encoded))
    return map_header(len(parts)) + b"".join(parts)


def encode_checked(role: Role, command: Command, body: Body) -> bytes:
    """Encode ``body`` and decode it back, so nothing a receiver refuses is sent.

    Raises :class:`WireError` for a body that breaks a rule (a value out of
    range, a name with bad characters, a payload too large, ...).
    """
    try:
        frame = encode_body(role, command, body)
    except (ValueError, OverflowError) as exc:  # e.g. an integer too wide for msgpack
        raise WireError(Fault.RANGE, str(exc)) from None
    decode_body(role, command, frame)
    return frame


def encode_trusted(role: Role, command: Command, body: Body) -> bytes:
    """Encode a body whose fields this library built itself, of the right types.

    Checks what :func:`encode_checked` would find in such a body (each
    value's range, the body's size and the rules that span fields) on the
    values themselves, without decoding the bytes back: the worker's hot
    path, once per RESULT. Raises :class:`WireError` as
    :func:`encode_checked` does.
    """
    rule = _RULES.get((role, command))
    if rule is None or rule.schema is None:
        raise ValueError(f"{chr(role)} does not send {command.name} bodies")
    schema = rule.schema
    for f in schema.fields:
        if f.foreign:
            continue
        value = getattr(body, f.key)
        try:
            if value is None:
                if f.required:
                    raise _Invalid(Fault.MISSING, "is missing")
            elif f.required or value != f.default:
                f.type.check(value)
        except _Invalid as exc:
            raise WireError(exc.fault, f"{f.key} {exc.detail}") from None
    try:
        schema.validate(body)
        frame = schema.encode(body)
    except _Invalid as exc:
        raise WireError(exc.fault, exc.detail) from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer too wide for msgpack
        raise WireError(Fault.RANGE, str(exc)) from None
    if len(frame) > MAX_BODY:
        raise WireError(Fault.TOO_LARGE, f"body of {len(frame)} bytes is over {MAX_BODY}")
    return frame
