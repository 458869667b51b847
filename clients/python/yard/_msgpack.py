"""Bounded msgpack reading and shortest-form msgpack writing.

The reader enforces what PROTOCOL.md 4.5 (D1, D3, D4) and 11.2 ask of every
receiver before anything is allocated for a claimed size: one object
spanning the whole frame, every count bounded by the bytes that remain,
nesting at most ``MAX_DEPTH`` and at most ``MAX_ELEMENTS`` array items plus
map keys and values in one body, and never the byte ``0xc1``. It returns a
tree of :class:`Node` that keeps each value's byte span, so raw values (an
event payload, a cache policy) can be carried on byte for byte.

The writer emits the shortest forms of PROTOCOL.md 4.5 (E3).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Union

MAX_DEPTH = 8
MAX_ELEMENTS = 4096


class Kind(enum.Enum):
    """The msgpack type family of a :class:`Node`."""

    NIL = "nil"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STR = "str"
    BIN = "bin"
    ARRAY = "array"
    MAP = "map"
    EXT = "ext"


NodeValue = Union[None, bool, int, float, bytes, list["Node"], list[tuple["Node", "Node"]]]


@dataclass(frozen=True, slots=True)
class Node:
    """One decoded msgpack value and the span ``data[start:end]`` it came from.

    ``value`` is ``None`` for nil, a ``bool``, an ``int``, a ``float``, the
    ``bytes`` of a str, bin or ext (str bytes are not UTF-8 checked), a list of
    nodes for an array, or a list of ``(key, value)`` node pairs for a map,
    in wire order.
    """

    kind: Kind
    value: NodeValue
    start: int
    end: int


class MsgpackError(ValueError):
    """The bytes are not one acceptable msgpack object.

    ``too_large`` tells a limit breach (depth, element count) from malformed
    input (truncation, trailing bytes, impossible counts, ``0xc1``).
    """

    def __init__(self, detail: str, *, too_large: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.too_large = too_large


_FIXED_INT = {
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
}
_LENGTH = {
    0xD9: (Kind.STR, ">B", 1), 0xDA: (Kind.STR, ">H", 2), 0xDB: (Kind.STR, ">I", 4),
    0xC4: (Kind.BIN, ">B", 1), 0xC5: (Kind.BIN, ">H", 2), 0xC6: (Kind.BIN, ">I", 4),
    0xC7: (Kind.EXT, ">B", 1), 0xC8: (Kind.EXT, ">H", 2), 0xC9: (Kind.EXT, ">I", 4),
}
_CONTAINER = {
    0xDC: (Kind.ARRAY, ">H", 2), 0xDD: (Kind.ARRAY, ">I", 4),
    0xDE: (Kind.MAP, ">H", 2), 0xDF: (Kind.MAP, ">I", 4),
}
_FIXEXT_SIZE = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


class _Reader:
    """A cursor over one frame that counts the elements it has read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.elements = 0

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes; MsgpackError if the frame ends first."""
        end = self.pos + n
        if end > len(self.data):
            raise MsgpackError("truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str, size: int) -> int:
        """The next big-endian number of ``size`` bytes."""
        (value,) = struct.unpack(fmt, self.take(size))
        return value

    def read(self, depth: int) -> Node:
        """One value at nesting ``depth`` (the body map is 1)."""
        start = self.pos
        (byte,) = self.take(1)
        if byte <= 0x7F:
            return Node(Kind.INT, byte, start, self.pos)
        if byte >= 0xE0:
            return Node(Kind.INT, byte - 0x100, start, self.pos)
        if 0xA0 <= byte <= 0xBF:
            return Node(Kind.STR, self.take(byte & 0x1F), start, self.pos)
        if 0x80 <= byte <= 0x8F:
            return self.container(Kind.MAP, byte & 0x0F, depth, start)
        if 0x90 <= byte <= 0x9F:
            return self.container(Kind.ARRAY, byte & 0x0F, depth, start)
        if byte == 0xC0:
            return Node(Kind.NIL, None, start, self.pos)
        if byte in (0xC2, 0xC3):
            return Node(Kind.BOOL, byte == 0xC3, start, self.pos)
        if byte in _FIXED_INT:
            return Node(Kind.INT, self.unpack(*_FIXED_INT[byte]), start, self.pos)
        if byte == 0xCA:
            return Node(Kind.FLOAT, self.unpack(">f", 4), start, self.pos)
        if byte == 0xCB:
            return Node(Kind.FLOAT, self.unpack(">d", 8), start, self.pos)
        if byte in _LENGTH:
            kind, fmt, size = _LENGTH[byte]
            length = self.unpack(fmt, size)
            if kind is Kind.EXT:
                length += 1  # the type byte
            return Node(kind, self.take(length), start, self.pos)
        if byte in _FIXEXT_SIZE:
            return Node(Kind.EXT, self.take(1 + _FIXEXT_SIZE[byte]), start, self.pos)
        if byte in _CONTAINER:
            kind, fmt, size = _CONTAINER[byte]
            return self.container(kind, self.unpack(fmt, size), depth, start)
        raise MsgpackError(f"byte 0x{byte:02x} is never valid msgpack")

    def container(self, kind: Kind, count: int, depth: int, start: int) -> Node:
        """An array or map of ``count`` entries whose header was just read."""
        elements = 2 * count if kind is Kind.MAP else count
        if elements > len(self.data) - self.pos:
            raise MsgpackError(f"{kind.value} of {count} entries cannot fit in the frame")
        if depth > MAX_DEPTH:
            raise MsgpackError(f"nesting deeper than {MAX_DEPTH}", too_large=True)
        self.elements += elements
        if self.elements > MAX_ELEMENTS:
            raise MsgpackError(f"more than {MAX_ELEMENTS} elements", too_large=True)
        if kind is Kind.ARRAY:
            items = [self.read(depth + 1) for _ in range(count)]
            return Node(kind, items, start, self.pos)
        pairs = [(self.read(depth + 1), self.read(depth + 1)) for _ in range(count)]
        return Node(kind, pairs, start, self.pos)


def read_map(data: bytes) -> Node:
    """Parse ``data`` as exactly one msgpack map spanning all of it.

    Raises :class:`MsgpackError` on any breach of the bounds above.
    """
    reader = _Reader(data)
    node = reader.read(depth=1)
    if reader.pos != len(data):
        raise MsgpackError(f"{len(data) - reader.pos} trailing bytes")
    if node.kind is not Kind.MAP:
        raise MsgpackError(f"body is a msgpack {node.kind.value}, not a map")
    return node


def _sized(length: int, forms: tuple[tuple[int, bytes, str], ...], what: str) -> bytes:
    """The first header form of ``forms`` (limit, prefix, struct format) that fits ``length``."""
    for limit, prefix, fmt in forms:
        if length <= limit:
            return prefix + struct.pack(fmt, length)
    raise ValueError(f"{what} of {length} bytes is too long for msgpack")


def pack_int(value: int) -> bytes:
    """An integer in its shortest form (unsigned forms for values >= 0)."""
    if 0 <= value <= 0x7F:
        return bytes((value,))
    if 0 <= value <= 0xFF:
        return b"\xcc" + struct.pack(">B", value)
    if 0 <= value <= 0xFFFF:
        return b"\xcd" + struct.pack(">H", value)
    if 0 <= value <= 0xFFFFFFFF:
        return b"\xce" + struct.pack(">I", value)
    if 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        return b"\xcf" + struct.pack(">Q", value)
    if -32 <= value < 0:
        return struct.pack(">b", value)
    for prefix, fmt, low in ((b"\xd0", ">b", -(2**7)), (b"\xd1", ">h", -(2**15)),
                             (b"\xd2", ">i", -(2**31)), (b"\xd3", ">q", -(2**63))):
        if value >= low:
            return prefix + struct.pack(fmt, value)
    raise ValueError(f"integer {value} does not fit in msgpack")


def pack_str(value: bytes) -> bytes:
    """``value`` as a msgpack str (the bytes are written as given)."""
    n = len(value)
    if n <= 31:
        return bytes((0xA0 | n,)) + value
    return _sized(n, ((0xFF, b"\xd9", ">B"), (0xFFFF, b"\xda", ">H"),
                      (0xFFFFFFFF, b"\xdb", ">I")), "str") + value


def pack_bin(value: bytes) -> bytes:
    """``value`` as a msgpack bin."""
    return _sized(len(value), ((0xFF, b"\xc4", ">B"), (0xFFFF, b"\xc5", ">H"),
                               (0xFFFFFFFF, b"\xc6", ">I")), "bin") + value


def pack_bool(value: bool) -> bytes:
    """A msgpack bool."""
    return b"\xc3" if value else b"\xc2"


def map_header(count: int) -> bytes:
    """The header of a map of ``count`` entries."""
    if count <= 15:
        return bytes((0x80 | count,))
    return _sized(count, ((0xFFFF, b"\xde", ">H"), (0xFFFFFFFF, b"\xdf", ">I")), "map")


def array_header(count: int) -> bytes:
    """The header of an array of ``count`` items."""
    if count <= 15:
        return bytes((0x90 | count,))
    return _sized(count, ((0xFFFF, b"\xdc", ">H"), (0xFFFFFFFF, b"\xdd", ">I")), "array")
