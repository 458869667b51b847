"""Wire details the vectors do not pin down on their own."""

from __future__ import annotations

import msgpack
import pytest

from yard import _msgpack, wire


@pytest.mark.parametrize("value", [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
                                   2**64 - 1, -1, -32, -33, -128, -129, -(2**63)])
def test_integers_take_the_shortest_form(value: int) -> None:
    assert _msgpack.pack_int(value) == msgpack.packb(value)


@pytest.mark.parametrize("length", [0, 31, 32, 255, 256, 65535, 65536])
def test_str_and_bin_take_the_shortest_form(length: int) -> None:
    data = b"x" * length
    assert _msgpack.pack_str(data) == msgpack.packb(data.decode())
    assert _msgpack.pack_bin(data) == msgpack.packb(data, use_bin_type=True)


@pytest.mark.parametrize("count", [0, 15, 16, 65535, 65536])
def test_container_headers_take_the_shortest_form(count: int) -> None:
    items = [None] * count
    assert _msgpack.array_header(count) + b"\xc0" * count == msgpack.packb(items)
    entries = b"".join(msgpack.packb(k) + b"\xc0" for k in range(count))
    assert _msgpack.map_header(count) + entries == msgpack.packb(dict.fromkeys(range(count)))


def test_cache_policy_matches_the_vector() -> None:
    # submit_full carries {ttl_ms: 60000, tags: ["summaries"]}.
    assert wire.encode_cache_policy({"tags": ["summaries"], "ttl_ms": 60000}) == bytes.fromhex(
        "82a674746c5f6d73cdea60a47461677391a973756d6d6172696573")
    assert wire.encode_cache_policy({}) == b"\x80"
    assert wire.encode_cache_policy({"key": []}) == b"\x81\xa3key\x90"


@pytest.mark.parametrize("policy", [
    {"ttl_ms": True}, {"tags": "one"}, {"tags": ["x"] * 17}, {"headers": [""]},
    {"key": ["a"], "exclude": ["b"]}, {"ttl": 1},
])
def test_bad_cache_policies(policy: dict) -> None:
    with pytest.raises(ValueError):
        wire.encode_cache_policy(policy)


def test_batches_respect_count_and_size() -> None:
    assert [len(b) for b in wire.batches([b"x"] * 600)] == [256, 256, 88]
    big = b"x" * (6 * 1024 * 1024)
    assert [len(b) for b in wire.batches([big, big, big, b"y"])] == [2, 2]


def test_checked_encoding_refuses_what_a_receiver_would() -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.encode_checked(wire.Role.CLIENT, wire.Command.SUBMIT,
                            wire.Submit(id=b"t", service=b"echo", retries=-1))
    assert caught.value.fault is wire.Fault.RANGE
    assert str(caught.value) == "bad_field: retries out of range 0..16"


def test_an_oversized_body_is_refused_before_it_is_read() -> None:
    frame = b"\x81\xa1x\xc6" + (wire.MAX_BODY).to_bytes(4, "big") + b"\0" * wire.MAX_BODY
    with pytest.raises(wire.WireError) as caught:
        wire.decode_body(wire.Role.CLIENT, wire.Command.SUBMIT, frame)
    assert caught.value.fault is wire.Fault.TOO_LARGE


def test_a_bad_disconnect_body_is_dropped_not_refused() -> None:
    frames = [wire.header(wire.Role.BROKER, wire.Command.DISCONNECT), b"\xc1"]
    assert wire.decode(frames) == wire.Message(wire.Role.BROKER, wire.Command.DISCONNECT)
