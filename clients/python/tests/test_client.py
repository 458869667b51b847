"""The Python client against a real broker and the C yard-worker."""

from __future__ import annotations

import builtins
import concurrent.futures
import signal
import threading
import time

import pytest
from conftest import Broker, Yard, free_port, wait_for

import yard


def test_call_returns_the_echo(client: yard.Client) -> None:
    result = client.call("echo", b"hello")
    assert result.payload == b"hello"
    assert result.status is yard.Status.OK
    assert result.attempts == 1
    assert result.total_us >= result.run_us
    assert not result.cached
    assert client.call("echo", "text é").text == "text é"


def test_empty_payload(client: yard.Client) -> None:
    assert client.call("echo").payload == b""


def test_handler_error_raises_task_error(client: yard.Client) -> None:
    with pytest.raises(yard.TaskError) as caught:
        client.call("fail", b"x")
    assert "always fails" in caught.value.message
    assert caught.value.attempts == 1
    assert caught.value.status is yard.Status.ERROR


def test_retries_make_more_attempts(client: yard.Client) -> None:
    with pytest.raises(yard.TaskError) as caught:
        client.call("fail", b"x", retries=2, backoff_ms=10)
    assert caught.value.attempts == 3


def test_deadline_raises_timeout(client: yard.Client) -> None:
    with pytest.raises(yard.TimeoutError) as caught:
        client.call("sleep", b"3000", timeout_ms=300)
    assert isinstance(caught.value, builtins.TimeoutError)
    assert not isinstance(caught.value, yard.BrokerUnreachableError)
    assert caught.value.message == "deadline exceeded"


def test_cancel_a_running_task(client: yard.Client) -> None:
    future = client.submit("sleep", b"5000", timeout_ms=20_000)
    time.sleep(0.3)
    assert client.cancel(future.task_id)
    with pytest.raises(yard.CancelledError):
        future.result(timeout=10)
    assert not client.cancel(future.task_id)


def test_futures_resolve_independently(client: yard.Client) -> None:
    slow = client.submit("sleep", b"1000")
    fast = client.submit("echo", b"fast")
    failing = client.submit("fail", b"")
    done = [f.task_id for f in concurrent.futures.as_completed([slow, fast, failing], timeout=10)]
    assert done[-1] == slow.task_id
    assert fast.result().payload == b"fast"
    assert isinstance(failing.exception(), yard.TaskError)
    assert slow.result().payload == b"1000"


def test_batch_returns_results_in_order(client: yard.Client) -> None:
    payloads = [str(i).encode() for i in range(300)]
    results = client.batch("echo", payloads)
    assert [r.payload for r in results if isinstance(r, yard.Result)] == payloads


def test_batch_reports_each_failure(client: yard.Client) -> None:
    results = client.batch("fail", [b"a", b"b"])
    assert all(isinstance(r, yard.TaskError) for r in results)


def test_map_yields_in_input_order(client: yard.Client) -> None:
    # Later tasks finish first; map still yields them in input order.
    payloads = [b"600", b"400", b"200", b"0", b"0", b"0"]
    results = list(client.map("sleep", payloads, window=4))
    assert [r.payload for r in results if isinstance(r, yard.Result)] == payloads


def test_map_bounds_outstanding_tasks(broker: Broker, client: yard.Client,
                                      service_name: str) -> None:
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def handle(job: yard.Job) -> bytes:
        with lock:
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return job.payload

    worker = yard.Worker(broker.endpoint, capacity=16)
    worker.handler(service_name)(handle)
    with worker:
        results = list(client.map(service_name, (str(i) for i in range(20)), window=3))
    assert [r.text for r in results] == [str(i) for i in range(20)]
    assert running[1] == 3


def test_priority_orders_queued_tasks(procs: Yard, service_name: str) -> None:
    broker = procs.broker()
    order: list[bytes] = []
    gate = threading.Event()
    worker = yard.Worker(broker.endpoint, capacity=1)

    @worker.handler(service_name)
    def handle(job: yard.Job) -> bytes:
        if job.payload == b"first":
            gate.wait(10)
        order.append(job.payload)
        return job.payload

    with worker, yard.Client(broker.endpoint) as client:
        first = client.submit(service_name, b"first")
        wait_for(lambda: worker.wait_registered(0) and _queued(client, service_name) == 0
                 and _in_flight(client, service_name) == 1, 10, "the first task to run")
        futures = [client.submit(service_name, f"low{i}", priority=0) for i in range(3)]
        futures += [client.submit(service_name, f"high{i}", priority=9) for i in range(3)]
        wait_for(lambda: _queued(client, service_name) == 6, 10, "six queued tasks")
        gate.set()
        for future in [first, *futures]:
            future.result(timeout=10)
    assert order == [b"first", b"high0", b"high1", b"high2", b"low0", b"low1", b"low2"]


def _queued(client: yard.Client, service: str) -> int:
    return client.stats()["services"].get(service, {}).get("queued", -1)


def _in_flight(client: yard.Client, service: str) -> int:
    return client.stats()["services"].get(service, {}).get("in_flight", -1)


def test_headers_reach_the_worker(procs: Yard, service_name: str) -> None:
    broker = procs.broker()
    worker = yard.Worker(broker.endpoint)

    @worker.handler(service_name)
    def handle(job: yard.Job) -> str:
        return ",".join(f"{k}={v}" for k, v in job.headers.items())

    with worker, yard.Client(broker.endpoint) as client:
        result = client.call(service_name, headers={"trace_id": "ab12", "tenant": "acme"})
    assert result.text == "trace_id=ab12,tenant=acme"


def test_outstanding_task_id_is_refused(client: yard.Client) -> None:
    future = client.submit("sleep", b"300", task_id="dup-1")
    with pytest.raises(yard.InvalidError):
        client.submit("echo", b"", task_id="dup-1")
    future.result(timeout=10)
    assert client.call("echo", b"again", task_id="dup-1").payload == b"again"


@pytest.mark.parametrize("options", [
    {"service": "bad service"},
    {"priority": 10},
    {"retries": 17},
    {"timeout_ms": 0},
    {"headers": {"k" * 65: "v"}},
    {"cache": {"ttl_ms": -1}},
    {"cache": {"key": ["a"], "exclude": ["b"]}},
    {"cache": {"unknown": 1}},
])
def test_bad_task_is_refused_locally(client: yard.Client, options: dict) -> None:
    service = options.pop("service", "echo")
    with pytest.raises(yard.InvalidError) as caught:
        client.submit(service, b"x", **options)
    assert isinstance(caught.value, ValueError)


def test_many_threads_share_one_client(client: yard.Client) -> None:
    def work(n: int) -> list[bytes]:
        return [client.call("echo", f"{n}-{i}").payload for i in range(40)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(work, range(8)))
    assert outputs == [[f"{n}-{i}".encode() for i in range(40)] for n in range(8)]


def test_stats_and_ping(client: yard.Client) -> None:
    stats = client.stats()
    assert {"broker", "total", "services", "workers"} <= stats.keys()
    assert stats["services"]["echo"]["workers"] == 1
    ping = client.ping(2000)
    assert ping["probed"] == ping["answered"] == 3 and ping["complete"]


def test_full_queue_is_rejected(procs: Yard) -> None:
    broker = procs.broker("--max-queue", "1")
    with yard.Client(broker.endpoint) as client:
        waiting = client.submit("nobody", b"", timeout_ms=5000)
        with pytest.raises(yard.RejectedError) as caught:
            client.call("nobody", b"")
        assert caught.value.retry_after_ms > 0
        client.cancel(waiting.task_id)
        with pytest.raises(yard.CancelledError):
            waiting.result(timeout=10)


def test_no_broker_gives_up_locally() -> None:
    with yard.Client(f"tcp://127.0.0.1:{free_port()}") as client:
        started = time.monotonic()
        with pytest.raises(yard.BrokerUnreachableError) as caught:
            client.call("echo", b"", timeout_ms=200)
        # timeout_ms + 2000 ms of slack (PROTOCOL.md 8.3), generously bounded
        assert 2.0 <= time.monotonic() - started < 10
    assert caught.value.message == "no reply from broker"
    assert isinstance(caught.value, yard.TimeoutError)


def test_close_cancels_outstanding_tasks(broker: Broker) -> None:
    client = yard.Client(broker.endpoint)
    future = client.submit("sleep", b"5000")
    client.close()
    with pytest.raises(yard.CancelledError):
        future.result(timeout=5)
    with pytest.raises(RuntimeError):
        client.submit("echo", b"")
    client.close()  # idempotent


def test_resends_after_a_broker_restart(procs: Yard, service_name: str) -> None:
    # The broker dies holding the task; a new broker on the same port has
    # forgotten it. The client must resend it (PROTOCOL.md 8.3) and the
    # worker re-register (8.2) for the task to complete.
    first = procs.broker()
    port = int(first.endpoint.rsplit(":", 1)[1])
    events_port = int(first.events.rsplit(":", 1)[1])
    worker = yard.Worker(first.endpoint, heartbeat_ms=500)
    worker.handler(service_name)(lambda job: b"done " + job.payload)
    with worker, yard.Client(first.endpoint) as client:
        assert worker.wait_registered(10)
        future = client.submit("nobody." + service_name, b"", timeout_ms=20_000)
        wait_for(lambda: _queued(client, "nobody." + service_name) == 1, 10, "a queued task")
        first.process.signal(signal.SIGKILL)  # a crash: no drain, no answers
        first.process.wait(5)
        procs.broker(port=port, events_port=events_port)
        # The lost task is resent: the new broker holds it until its deadline.
        wait_for(lambda: _queued(client, "nobody." + service_name) == 1, 15, "the resent task")
        assert client.call(service_name, b"again", timeout_ms=15_000).text == "done again"
        client.cancel(future.task_id)
        with pytest.raises(yard.CancelledError):
            future.result(timeout=10)
