"""The client and the worker facing a fake broker: batching, resends, bad replies."""

from __future__ import annotations

import concurrent.futures
import os
import threading

import pytest
from conftest import FakeBroker

import yard
from yard import wire

C, B = wire.Role.CLIENT, wire.Role.BROKER


def _ok(body: wire.Body) -> wire.BrokerResult:
    assert isinstance(body, wire.Submit)
    return wire.BrokerResult(id=body.id, status=wire.Status.OK, payload=body.payload)


def test_batch_is_split_into_messages_of_256(fake_broker: FakeBroker) -> None:
    payloads = [str(i).encode() for i in range(300)]
    with yard.Client(fake_broker.endpoint) as client, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.batch, "svc", payloads)
        peer, first = fake_broker.expect(wire.Command.SUBMIT)
        _, second = fake_broker.expect(wire.Command.SUBMIT)
        assert (len(first.bodies), len(second.bodies)) == (256, 44)
        bodies = first.bodies + second.bodies
        assert [b.payload for b in bodies] == payloads
        fake_broker.send_message(peer, wire.Command.RESULT, *map(_ok, bodies[:256]))
        fake_broker.send_message(peer, wire.Command.RESULT, *map(_ok, bodies[256:]))
        results = pending.result(timeout=10)
    assert [r.payload for r in results] == payloads


def test_heartbeat_silence_and_disconnect(fake_broker: FakeBroker) -> None:
    heartbeat = [wire.header(C, wire.Command.HEARTBEAT)]
    with yard.Client(fake_broker.endpoint) as client:
        future = client.submit("svc", b"x")
        peer, frames = fake_broker.expect_frames(wire.Command.SUBMIT)
        # Silence: a HEARTBEAT after 1 s, then after 3 s a new connection
        # with the same routing id and the body resent unchanged.
        assert fake_broker.recv(timeout=3) == (peer, heartbeat)
        assert fake_broker.expect_frames(wire.Command.SUBMIT, timeout=5) == (peer, frames)
        # DISCONNECT: the broker does not know us; resend at once.
        fake_broker.send_message(peer, wire.Command.DISCONNECT)
        assert fake_broker.expect_frames(wire.Command.SUBMIT, timeout=2) == (peer, frames)
        fake_broker.send_message(peer, wire.Command.RESULT, _ok(wire.decode(frames).bodies[0]))
        assert future.result(timeout=5).payload == b"x"
        # Nothing outstanding: nothing sent, not even heartbeats.
        assert not fake_broker.sock.poll(1500)


def test_garbage_from_the_broker_is_survived(fake_broker: FakeBroker) -> None:
    with yard.Client(fake_broker.endpoint) as client:
        bad_result, refused, ok = (client.submit("svc", str(i), task_id=f"t{i}")
                                   for i in range(3))
        peer, _ = fake_broker.expect(wire.Command.SUBMIT)
        task_body = wire.encode_body(B, wire.Command.TASK, wire.Task(
            job=1, id=b"t0", service=b"svc", timeout_ms=1, attempt=1))
        for frames in (
            [b"junk"],                                          # not a header
            [b"YB\x02\x02", b"\x80"],                           # another version
            [b"YC\x01\x02", b"\x80"],                           # a client's RESULT
            [b"YB\x01\x20"],                                    # reserved CHUNK
            [b"YB\x01\x05", task_body],                         # TASK: for workers
            [b"YB\x01\x02"],                                    # RESULT without body
            [b"YB\x01\x02", b"\xc1", b"\xdd\xff\xff\xff\xff"],  # bodies that are not msgpack
            [b"YB\x01\x02", wire.encode_body(B, wire.Command.RESULT, wire.BrokerResult(
                id=b"unknown", status=wire.Status.OK))],        # nobody's task
            [b"YB\x01\x08", wire.encode_body(B, wire.Command.ERROR, wire.ErrorBody(
                code=b"malformed", message=b"\x1b[31mred"))],   # a refusal naming no task
        ):
            fake_broker.send(peer, frames)
        # The body is bad, but its id is readable: that task ends invalid.
        fake_broker.send(peer, [b"YB\x01\x02", b"\x82\xa2id\xa2t0\xa6status\xa5bogus"])
        with pytest.raises(yard.InvalidError, match="bad result from broker"):
            bad_result.result(timeout=5)
        fake_broker.send_message(peer, wire.Command.ERROR, wire.ErrorBody(
            code=b"bad_field", message=b"no", id=b"t1"))
        with pytest.raises(yard.InvalidError, match="bad_field: no"):
            refused.result(timeout=5)
        assert not ok.done()
        answer = wire.BrokerResult(id=b"t2", status=wire.Status.OK, payload=b"fine")
        fake_broker.send_message(peer, wire.Command.RESULT, answer, answer)  # extra: ignored
        assert ok.result(timeout=5).payload == b"fine"


def test_bad_version_error_ends_every_task(fake_broker: FakeBroker) -> None:
    with yard.Client(fake_broker.endpoint) as client:
        futures = [client.submit("svc", b"") for _ in range(2)]
        peer, _ = fake_broker.expect(wire.Command.SUBMIT)
        fake_broker.send_message(peer, wire.Command.ERROR, wire.ErrorBody(
            code=b"bad_version", message=b"this broker speaks version 1"))
        for future in futures:
            with pytest.raises(yard.InvalidError, match="bad_version"):
                future.result(timeout=5)


def _register(fake: FakeBroker) -> tuple[bytes, wire.Ready]:
    peer, message = fake.expect(wire.Command.READY)
    fake.send_message(peer, wire.Command.HEARTBEAT)
    (ready,) = message.bodies
    assert isinstance(ready, wire.Ready)
    return peer, ready


def _expect_report(fake: FakeBroker) -> wire.Report:
    while True:
        _, message = fake.expect(wire.Command.HEARTBEAT)
        if message.bodies:
            (report,) = message.bodies
            assert isinstance(report, wire.Report)
            return report


def test_worker_protocol(fake_broker: FakeBroker) -> None:
    worker = yard.Worker(fake_broker.endpoint, name="w1", capacity=3, heartbeat_ms=200)
    worker.handler("svc")(lambda job: job.payload[::-1])
    with worker:
        peer, ready = _register(fake_broker)
        assert ready == wire.Ready(service=b"svc", capacity=3, name=b"w1", pid=os.getpid(),
                                   version=yard.__version__.encode())
        assert worker.wait_registered(5)
        idle = _expect_report(fake_broker)  # unprompted, with every heartbeat
        assert idle.probe == 0 and idle.rss > 0 and idle.uptime_ms > 0

        fake_broker.send_message(peer, wire.Command.HEARTBEAT, wire.Probe(probe=7))
        report = _expect_report(fake_broker)
        assert (report.probe, report.version, report.in_flight) == (7, b"0.1.0", 0)

        fake_broker.send(peer, [b"junk"])
        fake_broker.send_message(peer, wire.Command.CANCEL, wire.CancelJob(job=99))
        fake_broker.send(peer, [wire.header(B, wire.Command.TASK),
                                b"\x82\xa3job\x05\xa2id\xa1x",  # no service: job 5 fails
                                b"\x81\xa2id\xa1y",             # no job: dropped
                                wire.encode_body(B, wire.Command.TASK, wire.Task(
                                    job=6, id=b"z", service=b"svc", payload=b"abc",
                                    timeout_ms=5000, attempt=1))])
        results = {}
        while len(results) < 2:
            _, message = fake_broker.expect(wire.Command.RESULT)
            results.update((body.job, body) for body in message.bodies)
        assert results[5].status is wire.Status.ERROR
        assert results[5].error == b"invalid task: bad_field: service is missing"
        assert (results[6].status, results[6].payload) == (wire.Status.OK, b"cba")

        # DISCONNECT: a new connection (so a new routing id) registers again.
        fake_broker.send_message(peer, wire.Command.DISCONNECT)
        new_peer, again = _register(fake_broker)
        assert new_peer != peer and again == ready
    # stop(): READY capacity 0, then DISCONNECT.
    _, drain = fake_broker.expect(wire.Command.READY)
    assert drain.bodies[0].capacity == 0
    fake_broker.expect(wire.Command.DISCONNECT)


def test_worker_cancel_of_a_queued_job(fake_broker: FakeBroker) -> None:
    release = threading.Event()
    worker = yard.Worker(fake_broker.endpoint, capacity=1)
    worker.handler("svc")(lambda job: b"one" if release.wait(10) else b"")
    with worker:
        peer, _ = _register(fake_broker)
        tasks = [wire.Task(job=n, id=b"t", service=b"svc", timeout_ms=5000, attempt=1)
                 for n in (1, 2)]
        fake_broker.send_message(peer, wire.Command.TASK, *tasks)
        fake_broker.send_message(peer, wire.Command.CANCEL, wire.CancelJob(job=2))
        _, message = fake_broker.expect(wire.Command.RESULT)
        assert message.bodies == (wire.WorkerResult(job=2, status=wire.Status.CANCELLED,
                                                    error=b"cancelled"),)
        release.set()
        _, message = fake_broker.expect(wire.Command.RESULT)
        assert [(b.job, b.payload) for b in message.bodies] == [(1, b"one")]


def test_submit_is_byte_exact(fake_broker: FakeBroker) -> None:
    # The SUBMIT of PROTOCOL.md 12.2, as the client puts it on the wire.
    with yard.Client(fake_broker.endpoint) as client:
        client.submit("llm.chat", b"{}", timeout_ms=5000, retries=2, backoff_ms=250,
                      priority=7, headers={"trace_id": "ab12"}, task_id="job-42")
        _, frames = fake_broker.recv()
    assert frames == [bytes.fromhex("59430101"), bytes.fromhex("""
        88 a2 69 64 a6 6a 6f 62 2d 34 32 a7 73 65 72 76
        69 63 65 a8 6c 6c 6d 2e 63 68 61 74 a7 70 61 79
        6c 6f 61 64 c4 02 7b 7d aa 74 69 6d 65 6f 75 74
        5f 6d 73 cd 13 88 a7 72 65 74 72 69 65 73 02 aa
        62 61 63 6b 6f 66 66 5f 6d 73 cc fa a8 70 72 69
        6f 72 69 74 79 07 a7 68 65 61 64 65 72 73 81 a8
        74 72 61 63 65 5f 69 64 a4 61 62 31 32""")]


def test_worker_reconnects_when_the_broker_falls_silent(fake_broker: FakeBroker) -> None:
    worker = yard.Worker(fake_broker.endpoint, heartbeat_ms=200)
    worker.handler("svc")(lambda job: b"")
    with worker:
        peer, _ = _register(fake_broker)
        # Never answer: after 3 s the worker drops the connection and registers anew.
        new_peer, _ = fake_broker.expect(wire.Command.READY, timeout=8)
        assert new_peer != peer
