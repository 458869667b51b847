"""Circuit breakers (PROTOCOL.md 8.6, 10) and the response cache (10b)."""

from __future__ import annotations

import time

import msgpack
import pytest
from conftest import BIN, Broker, Yard, wait_for_workers

import yard


def test_open_breaker_refuses_then_falls_back(broker: Broker, client: yard.Client,
                                              procs: Yard, service_name: str) -> None:
    procs.worker(broker, "fail", service=service_name)
    answer = client.call("yard.admin", f"breaker set {service_name} fail_threshold=2 "
                                       "base_timeout_ms=60000")
    assert '"fail_threshold":2' in answer.text
    for _ in range(2):
        with pytest.raises(yard.TaskError):
            client.call(service_name, b"")
    with pytest.raises(yard.CircuitOpenError) as refused:
        client.call(service_name, b"")
    assert refused.value.status is yard.Status.CIRCUIT_OPEN
    assert 0 < refused.value.retry_after_ms <= 72_000  # 60 s, +-20 %
    assert refused.value.attempts == 0
    fallen_back = client.call(service_name, b"via echo", fallback="echo")
    assert fallen_back.payload == b"via echo"


def _call_until_cached(client: yard.Client, payload: bytes, **options: object) -> yard.Result:
    """A repeat can run again until the cache stored the first result (10b 'store')."""
    deadline = time.monotonic() + 10
    while True:
        result = client.call("echo", payload, **options)
        if result.cached or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def test_cache_hit(broker: Broker, client: yard.Client, procs: Yard) -> None:
    procs.spawn([str(BIN / "yard-cache"), "--broker", broker.endpoint, "--events",
                 broker.events, "--no-l2", "--log-level", "error"])
    wait_for_workers(broker, "yard.cache", 1)

    first = client.call("echo", b"cache me", cache={"ttl_ms": 60_000, "tags": ["t1"]})
    assert (first.cached, first.attempts) == (False, 1)
    hit = _call_until_cached(client, b"cache me", cache={"ttl_ms": 60_000, "tags": ["t1"]})
    assert (hit.cached, hit.attempts, hit.payload) == (True, 0, b"cache me")

    # Keyed on one field of a msgpack payload: another request_id still hits.
    def request(request_id: str) -> bytes:
        return msgpack.packb({"prompt": "hi", "request_id": request_id})

    client.call("echo", request("r1"), cache={"key": ["prompt"]})
    keyed = _call_until_cached(client, request("r2"), cache={"key": ["prompt"]})
    assert keyed.cached and keyed.payload == request("r1")
    assert not client.call("echo", request("r3")).cached  # no policy, no cache
