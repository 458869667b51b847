"""Every vector of proto/vectors, both ways (proto/vectors/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from yard import wire

VECTORS = Path(__file__).resolve().parents[3] / "proto" / "vectors"
ALL = sorted(VECTORS.glob("*.json"))
VALID = [p for p in ALL if not p.name.startswith("invalid_")]
INVALID = [p for p in ALL if p.name.startswith("invalid_")]

ROLES = {"C": wire.Role.CLIENT, "W": wire.Role.WORKER, "B": wire.Role.BROKER}

# Which body class a (role, command) carries; the README's JSON is per key.
BODY_CLASS = {
    ("C", "SUBMIT"): wire.Submit,
    ("C", "CANCEL"): wire.CancelTask,
    ("C", "PUBLISH"): wire.Event,
    ("C", "SUBSCRIBE"): wire.Subscribe,
    ("W", "READY"): wire.Ready,
    ("W", "RESULT"): wire.WorkerResult,
    ("W", "HEARTBEAT"): wire.Report,
    ("W", "PUBLISH"): wire.Event,
    ("B", "RESULT"): wire.BrokerResult,
    ("B", "TASK"): wire.Task,
    ("B", "CANCEL"): wire.CancelJob,
    ("B", "HEARTBEAT"): wire.Probe,
    ("B", "ERROR"): wire.ErrorBody,
    ("B", "PUBLISH"): wire.Event,
    ("B", "PUBLISH_ACK"): wire.PublishAck,
}
RAW_HEX_KEYS = {"cache", "objects"}  # {"hex": raw msgpack map}


def load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return json.load(f)


def field_value(key: str, value: Any, event: bool) -> Any:
    """A vector's JSON field as the wire module represents it."""
    if key == "status":
        return wire.Status(value)
    if key in ("headers", "meta"):
        return tuple((k.encode(), v.encode()) for k, v in value)
    if key == "types":
        return tuple(t.encode() for t in value)
    if isinstance(value, dict):
        (form, text), = value.items()
        if key in RAW_HEX_KEYS or (event and key == "payload"):
            assert form == "hex"
        return text.encode() if form == "utf8" else bytes.fromhex(text)
    return value


def expected_message(vector: dict[str, Any]) -> wire.Message:
    role, command = vector["role"], vector["command"]
    bodies = []
    for body in vector["bodies"]:
        cls = BODY_CLASS[(role, command)]
        values = {k: field_value(k, v, cls is wire.Event) for k, v in body.items()}
        bodies.append(cls(**values))
    return wire.Message(ROLES[role], wire.Command[command], tuple(bodies))


def frames_of(vector: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(frame) for frame in vector["frames"]]


def test_vectors_are_present() -> None:
    assert len(VALID) >= 30 and len(INVALID) >= 60


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_vector_decodes(path: Path) -> None:
    vector = load(path)
    assert wire.decode(frames_of(vector)) == expected_message(vector)


@pytest.mark.parametrize("path", [p for p in VALID if not load(p).get("decode_only")],
                         ids=lambda p: p.stem)
def test_valid_vector_encodes_byte_exact(path: Path) -> None:
    vector = load(path)
    assert wire.encode(expected_message(vector)) == frames_of(vector)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_vector_is_refused(path: Path) -> None:
    vector = load(path)
    with pytest.raises(wire.WireError) as caught:
        wire.decode(frames_of(vector))
    assert caught.value.fault is wire.Fault(vector["expect_error"])
    if "expect_id" in vector:
        assert caught.value.id == field_value("id", vector["expect_id"], False)
