"""The event bus: publish and subscribe against a real broker and a fake one."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import pytest
from conftest import Broker, FakeBroker, Yard

import yard
from yard import wire


def test_publish_subscribe_round_trip(client: yard.Client) -> None:
    with client.subscribe(["test.rt."], timeout=10) as events:
        before_us = time.time_ns() // 1000
        client.publish("test.other", "not for this subscriber")
        client.publish("test.rt.order", {"order": "A-1", "items": [1, 2.5, None]},
                       source="shop", trace_id="trace-1", meta={"tenant": "acme"},
                       confirm=True)
        event = next(events)
    assert event.type == "test.rt.order"
    assert event.payload == {"order": "A-1", "items": [1, 2.5, None]}
    assert (event.source, event.trace_id, event.meta) == ("shop", "trace-1", {"tenant": "acme"})
    assert event.ts_us >= before_us - 5_000_000  # stamped by the broker
    assert event.sn >= 1
    assert events.missed == 0


def test_the_broker_publishes_task_and_system_events(client: yard.Client) -> None:
    with client.subscribe(["system.startup", "task.completed"], timeout=10) as events:
        startup = next(events)
        client.call("echo", b"", task_id="evented-1")
        completed = next(events)
    assert (startup.type, startup.source, startup.sn) == ("system.startup", "yard-broker", 1)
    assert completed.type == "task.completed"
    assert completed.payload["id"] == "evented-1"
    assert completed.sn == 2


def test_get_times_out_and_close_ends_iteration(client: yard.Client) -> None:
    events = client.subscribe(["test.nothing."])
    with pytest.raises(yard.TimeoutError):
        events.get(timeout=0.2)
    events.close()
    assert list(events) == []


def test_bad_events_are_refused_locally(client: yard.Client) -> None:
    with pytest.raises(yard.InvalidError):
        client.publish("has space")
    with pytest.raises(yard.InvalidError):
        client.publish("x" * 129, confirm=True)
    with pytest.raises(yard.InvalidError):
        client.subscribe(["task.*"])


def test_subscriber_limit(procs: Yard) -> None:
    broker = procs.broker("--max-subscribers", "1")
    with yard.Client(broker.endpoint, events_endpoint=broker.events) as client:
        with client.subscribe():
            with pytest.raises(yard.YardError, match="limit"):
                client.subscribe()


def test_subscribe_needs_the_events_endpoint(broker: Broker) -> None:
    with yard.Client(broker.endpoint) as client, pytest.raises(ValueError):
        client.subscribe()


def test_resubscribes_after_a_broker_restart(procs: Yard) -> None:
    first = procs.broker()
    ports = [int(ep.rsplit(":", 1)[1]) for ep in (first.endpoint, first.events)]
    with yard.Client(first.endpoint, events_endpoint=first.events) as client:
        events = client.subscribe(["system.startup"], timeout=15)
        assert next(events).payload["pid"] == first.process.pid
        first.process.signal(signal.SIGKILL)
        first.process.wait(5)
        second = procs.broker(port=ports[0], events_port=ports[1])
        # The new broker gives its retained startup event to the new subscription.
        restarted = next(events)
    assert restarted.payload["pid"] == second.process.pid
    assert restarted.sn == 1


def _event(sn: int, type_: bytes = b"a.x") -> wire.Event:
    return wire.Event(type=type_, payload=b"\x01", sn=sn)


def test_sn_gaps_count_as_missed(fake_broker: FakeBroker) -> None:
    client = yard.Client(fake_broker.endpoint, events_endpoint=fake_broker.endpoint)
    with client, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.subscribe, ["a."], timeout=5)
        peer, message = fake_broker.expect(wire.Command.SUBSCRIBE)
        assert message.bodies == (wire.Subscribe(types=(b"a.",)),)
        fake_broker.send_message(peer, wire.Command.HEARTBEAT)
        events = pending.result(timeout=5)

        fake_broker.send_message(peer, wire.Command.PUBLISH, _event(1), _event(4))
        assert [next(events).sn, next(events).sn] == [1, 4]
        assert events.missed == 2

        # The broker forgot us: subscribe again, and numbering starts over.
        fake_broker.send_message(peer, wire.Command.DISCONNECT)
        again, message = fake_broker.expect(wire.Command.SUBSCRIBE)
        assert again == peer and message.bodies == (wire.Subscribe(types=(b"a.",)),)
        fake_broker.send_message(peer, wire.Command.HEARTBEAT)
        fake_broker.send_message(peer, wire.Command.PUBLISH, _event(2))
        assert next(events).sn == 2
        assert events.missed == 3

        # Garbage is dropped; an event that does not decode is a missed one.
        fake_broker.send(peer, [b"garbage"])
        fake_broker.send(peer, [wire.header(wire.Role.BROKER, wire.Command.PUBLISH),
                                b"\x81\xa4type\xa3bad", wire.encode_body(
                                    wire.Role.BROKER, wire.Command.PUBLISH, _event(4))])
        assert next(events).sn == 4
        assert events.missed == 4

        events.close()
        fake_broker.expect(wire.Command.DISCONNECT)
