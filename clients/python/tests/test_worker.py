"""The Python worker against a real broker, the C client and the Python client."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import BIN, Broker, Yard, wait_for, wait_for_workers, workers_of

import yard

SLEEPY = str(Path(__file__).with_name("sleepy_worker.py"))


@pytest.fixture
def worker(broker: Broker) -> yard.Worker:
    return yard.Worker(broker.endpoint, name="py-test", capacity=4)


def test_serves_the_c_client(broker: Broker, worker: yard.Worker, service_name: str) -> None:
    @worker.handler(service_name)
    def shout(job: yard.Job) -> bytes:
        return job.payload.upper()

    with worker:
        assert worker.wait_registered(10)
        done = subprocess.run([str(BIN / "yard"), "--broker", broker.endpoint, "submit",
                               "--timeout", "10000", service_name, "hello from c"],
                              capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"HELLO FROM C\n"


def test_handler_outcomes(client: yard.Client, worker: yard.Worker, service_name: str) -> None:
    @worker.handler(service_name)
    def handle(job: yard.Job) -> object:
        if job.payload == b"reject":
            raise yard.Reject("payload must not be 'reject'")
        if job.payload == b"boom":
            raise KeyError("boom")
        if job.payload == b"number":
            return 42
        if job.payload == b"none":
            return None
        return f"{job.id} {job.service} attempt {job.attempt} {0 < job.remaining <= 5}"

    with worker:
        result = client.call(service_name, b"info", timeout_ms=5000, task_id="info-1")
        assert result.text == f"info-1 {service_name} attempt 1 True"
        assert client.call(service_name, b"none").payload == b""
        with pytest.raises(yard.InvalidError, match="must not be 'reject'"):
            client.call(service_name, b"reject", retries=3)
        with pytest.raises(yard.TaskError, match="KeyError: 'boom'") as caught:
            client.call(service_name, b"boom", retries=1, backoff_ms=0)
        assert caught.value.attempts == 2
        with pytest.raises(yard.TaskError, match="returned int"):
            client.call(service_name, b"number")


def test_class_based_handler(client: yard.Client, worker: yard.Worker,
                             service_name: str) -> None:
    class Reverse(yard.Handler):
        service = service_name

        def handle(self, job: yard.Job) -> bytes:
            return job.payload[::-1]

    worker.register(Reverse())
    with worker:
        assert client.call(service_name, b"abc").payload == b"cba"
    with pytest.raises(ValueError, match="one Worker per service"):
        worker.register(Reverse())


def test_cancel_reaches_a_running_handler(client: yard.Client, worker: yard.Worker,
                                          service_name: str) -> None:
    started, cancelled = threading.Event(), threading.Event()

    @worker.handler(service_name)
    def wait(job: yard.Job) -> bytes:
        started.set()
        if job.wait_cancelled(10):
            cancelled.set()
        return b"late"

    with worker:
        future = client.submit(service_name, b"", timeout_ms=20_000)
        assert started.wait(10)
        client.cancel(future.task_id)
        with pytest.raises(yard.CancelledError):
            future.result(timeout=10)
        assert cancelled.wait(10)


def test_deadline_cancels_the_handler(client: yard.Client, worker: yard.Worker,
                                      service_name: str) -> None:
    cancelled = threading.Event()

    @worker.handler(service_name)
    def wait(job: yard.Job) -> bytes:
        if job.wait_cancelled(10):
            cancelled.set()
        return b"late"

    with worker:
        with pytest.raises(yard.TimeoutError):
            client.call(service_name, b"", timeout_ms=300)
        assert cancelled.wait(10)


def test_probe_is_answered_with_a_report(client: yard.Client, worker: yard.Worker,
                                         broker: Broker, service_name: str) -> None:
    worker.handler(service_name)(lambda job: job.payload)
    with worker:
        assert worker.wait_registered(10)
        ping = client.ping(3000)
        mine = [w for w in ping["workers"] if w["service"] == service_name]
        assert len(mine) == 1 and mine[0]["answered"] and mine[0]["name"] == "py-test"
        (stats,) = workers_of(broker, service_name)
        assert (stats["name"], stats["capacity"]) == ("py-test", 4)
        report = stats["report"]
        assert report["version"] == yard.__version__
        assert report["memory"]["rss_bytes"] > 0
        assert report["in_flight"] == 0
        assert stats["ping"]["rtt_us"] > 0


def test_refused_ready_stops_the_worker(broker: Broker, worker: yard.Worker) -> None:
    worker.handler("yard.admin")(lambda job: b"")
    worker.start()
    with pytest.raises(yard.YardError, match="refused READY"):
        worker.wait_registered(10)
    worker.stop()


def test_graceful_stop_finishes_held_tasks(client: yard.Client, broker: Broker,
                                           worker: yard.Worker, service_name: str) -> None:
    started = threading.Semaphore(0)

    @worker.handler(service_name)
    def slow(job: yard.Job) -> bytes:
        started.release()
        job.wait_cancelled(0.5)
        return b"finished " + job.payload

    worker.start()
    futures = [client.submit(service_name, str(i)) for i in range(2)]
    assert started.acquire(timeout=10) and started.acquire(timeout=10)
    worker.stop()
    assert [f.result(timeout=10).text for f in futures] == ["finished 0", "finished 1"]
    wait_for_workers(broker, service_name, 0)
    assert client.stats()["services"][service_name]["completed"] == 2


def test_sigterm_drains_a_worker_process(procs: Yard, service_name: str) -> None:
    broker = procs.broker()
    process = procs.python(SLEEPY, broker.endpoint, service_name, "sleepy")
    wait_for_workers(broker, service_name, 1)
    with yard.Client(broker.endpoint) as client:
        future = client.submit(service_name, b"0.5")
        wait_for(lambda: "started" in process.output(), 10, "the task to start")
        process.signal(signal.SIGTERM)
        assert future.result(timeout=10).text == "sleepy attempt 1"
        assert process.wait(10) == 0
    assert "stopped" in process.output()


def test_killed_worker_task_is_redispatched(procs: Yard, service_name: str) -> None:
    broker = procs.broker()
    doomed = procs.python(SLEEPY, broker.endpoint, service_name, "doomed")
    wait_for_workers(broker, service_name, 1)
    with yard.Client(broker.endpoint) as client:
        future = client.submit(service_name, b"0.2", timeout_ms=30_000)
        wait_for(lambda: "started" in doomed.output(), 10, "the task to start")
        doomed.signal(signal.SIGKILL)
        procs.python(SLEEPY, broker.endpoint, service_name, "rescuer")
        result = future.result(timeout=20)
    assert result.text == "rescuer attempt 2"
    assert result.attempts == 2


def test_worker_publishes_events(broker: Broker, client: yard.Client, worker: yard.Worker,
                                 service_name: str) -> None:
    @worker.handler(service_name)
    def announce(job: yard.Job) -> bytes:
        job.publish("test.worker.done", {"id": job.id}, meta={"k": "v"})
        return b""

    with worker, client.subscribe(["test.worker."], timeout=10) as events:
        client.call(service_name, b"", task_id="announce-1")
        event = next(events)
    assert (event.type, event.source, event.payload, event.meta) == \
        ("test.worker.done", "py-test", {"id": "announce-1"}, {"k": "v"})



def test_inline_worker_runs_handlers_on_its_io_thread(broker: Broker, client: yard.Client,
                                                       service_name: str) -> None:
    """inline=True: no handler threads; outcomes are the same as with them."""
    worker = yard.Worker(broker.endpoint, name="py-inline", capacity=16, inline=True)
    threads: set[str] = set()

    @worker.handler(service_name)
    def handle(job: yard.Job) -> bytes:
        threads.add(threading.current_thread().name)
        if job.payload == b"reject":
            raise yard.Reject("no")
        if job.payload == b"boom":
            raise RuntimeError("boom")
        if job.payload == b"big":
            return b"x" * (4 * 1024 * 1024 + 1)
        return job.payload[::-1]

    with worker:
        assert worker.wait_registered(10)
        results = client.batch(service_name, [b"abc%d" % i for i in range(500)])
        assert [r.payload for r in results] == [(b"abc%d" % i)[::-1] for i in range(500)]
        with pytest.raises(yard.InvalidError, match="no"):
            client.call(service_name, b"reject")
        with pytest.raises(yard.TaskError, match="boom"):
            client.call(service_name, b"boom")
        with pytest.raises(yard.TaskError, match="too_large"):
            client.call(service_name, b"big")
        assert client.call(service_name, b"still here").payload == b"ereh llits"
    assert threads == {"yard-worker"}
