"""Fixtures: real Yard processes on free loopback ports, and a fake broker.

Binaries come from ``$YARD_BIN`` (default ``build/bin`` under the repository
root). Every process is started by the fixtures, bounded in time, and
stopped by PID at teardown (SIGTERM, then SIGKILL after a timeout).
"""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
import zmq

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO = PYTHON_DIR.parents[1]
BIN = Path(os.environ.get("YARD_BIN", REPO / "build" / "bin"))

sys.path.insert(0, str(PYTHON_DIR))

import yard  # noqa: E402  (after the path set-up above)
from yard import wire  # noqa: E402


TEST_TIMEOUT_S = 60
_LIVE: set[Process] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]) -> Iterator[None]:
    """Bound every test (setup, call, teardown): after TEST_TIMEOUT_S, dump the
    threads' stacks, kill the processes the tests started, and exit."""
    timer = threading.Timer(TEST_TIMEOUT_S, _abort, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _abort(nodeid: str) -> None:
    print(f"\n{nodeid} ran over {TEST_TIMEOUT_S} s; aborting", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(all_threads=True)
    for process in list(_LIVE):
        process.signal(signal.SIGKILL)
    os._exit(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms until it is true; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Process:
    """A child process that is always stopped by its PID."""

    def __init__(self, args: list[str], env: Optional[dict[str, str]] = None) -> None:
        self.args = args
        self._log = tempfile.TemporaryFile()  # a file, unlike a pipe, never blocks the child
        self.popen = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT)
        _LIVE.add(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it is still running after ``timeout`` s."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout)
        _LIVE.discard(self)

    def output(self) -> str:
        """Everything it wrote to stdout and stderr so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


@dataclass
class Broker:
    """A running yard-broker."""

    endpoint: str
    events: str
    process: Process
    args: list[str] = field(default_factory=list)


class Yard:
    """Starts Yard processes for one test scope and stops them all at its end."""

    def __init__(self) -> None:
        self.processes: list[Process] = []

    def spawn(self, args: list[str], env: Optional[dict[str, str]] = None) -> Process:
        if not Path(args[0]).exists():
            pytest.fail(f"{args[0]} not found: build Yard or set YARD_BIN")
        process = Process(args, env)
        self.processes.append(process)
        return process

    def broker(self, *extra: str, port: Optional[int] = None,
               events_port: Optional[int] = None) -> Broker:
        """Start a broker on free ports (or the given ones) and wait until it answers."""
        endpoint = f"tcp://127.0.0.1:{port or free_port()}"
        events = f"tcp://127.0.0.1:{events_port or free_port()}"
        args = [str(BIN / "yard-broker"), "--broker", endpoint, "--events", events,
                "--log-level", "error", *extra]
        broker = Broker(endpoint, events, self.spawn(args), list(extra))
        wait_until_serving(broker)
        return broker

    def worker(self, broker: Broker, handler: str, *extra: str,
               service: Optional[str] = None) -> Process:
        """Start a C yard-worker and wait until the broker lists it."""
        service = service or handler
        process = self.spawn([str(BIN / "yard-worker"), "--broker", broker.endpoint,
                              "--events", broker.events, "--handler", handler,
                              "--service", service, "--log-level", "error", *extra])
        wait_for_workers(broker, service, 1)
        return process

    def python(self, *args: str, env: Optional[dict[str, str]] = None) -> Process:
        """Run this interpreter with the package importable, ``env`` added."""
        full_env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR), PYTHONUNBUFFERED="1",
                        **(env or {}))
        return self.spawn([sys.executable, *args], env=full_env)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def wait_until_serving(broker: Broker, timeout: float = 10.0) -> None:
    """Wait for the tasks port to listen, then for an admin answer (PROTOCOL.md 10)."""
    port = int(broker.endpoint.rsplit(":", 1)[1])

    def listening() -> bool:
        assert broker.process.popen.poll() is None, "the broker exited"
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout, "the broker to listen")
    with yard.Client(broker.endpoint) as client:
        client.stats(timeout_ms=int(timeout * 1000))


def workers_of(broker: Broker, service: str) -> list[dict[str, object]]:
    with yard.Client(broker.endpoint) as client:
        return [w for w in client.stats()["workers"] if w["service"] == service]


def wait_for_workers(broker: Broker, service: str, count: int, timeout: float = 10.0) -> None:
    wait_for(lambda: len(workers_of(broker, service)) == count, timeout,
             f"{count} worker(s) of {service}")


@pytest.fixture(scope="module")
def module_yard() -> Iterator[Yard]:
    """Processes shared by one test module."""
    processes = Yard()
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def procs() -> Iterator[Yard]:
    """Processes of one test."""
    processes = Yard()
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def broker(module_yard: Yard) -> Broker:
    """One broker for the module, with C workers: echo, fail and sleep.

    The breaker of ``fail`` is off, or its failures would open it for the
    tests that follow.
    """
    shared = module_yard.broker("--breaker", "fail.enabled=false")
    module_yard.worker(shared, "echo", "--capacity", "16")
    module_yard.worker(shared, "fail", "--capacity", "4")
    module_yard.worker(shared, "sleep", "--capacity", "8")
    return shared


@pytest.fixture
def client(broker: Broker) -> Iterator[yard.Client]:
    with yard.Client(broker.endpoint, events_endpoint=broker.events) as c:
        yield c


@pytest.fixture
def service_name(request: pytest.FixtureRequest) -> str:
    """A service name unique to the test, so tests sharing a broker do not meet."""
    return re.sub(r"[^A-Za-z0-9.:-]", "-", request.node.name)[:120]


class FakeBroker:
    """A bare ROUTER standing in for the broker, driven step by step by a test."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.sock.bind(self.endpoint)

    def recv(self, timeout: float = 5.0) -> tuple[bytes, list[bytes]]:
        """The next message: (routing id, frames after it)."""
        if not self.sock.poll(int(timeout * 1000)):
            pytest.fail(f"the fake broker received nothing in {timeout} s")
        routing_id, *frames = self.sock.recv_multipart()
        return routing_id, frames

    def expect_frames(self, command: wire.Command,
                      timeout: float = 5.0) -> tuple[bytes, list[bytes]]:
        """Skip heartbeats until a ``command`` message arrives; return its raw frames."""
        deadline = time.monotonic() + timeout
        while True:
            routing_id, frames = self.recv(max(0.0, deadline - time.monotonic()))
            received = wire.parse_header(frames)[1]
            if received is command:
                return routing_id, frames
            assert received is wire.Command.HEARTBEAT, frames

    def expect(self, command: wire.Command, timeout: float = 5.0) -> tuple[bytes, wire.Message]:
        """Skip heartbeats until a ``command`` message arrives; return it decoded."""
        routing_id, frames = self.expect_frames(command, timeout)
        return routing_id, wire.decode(frames)

    def send(self, routing_id: bytes, frames: list[bytes]) -> None:
        self.sock.send_multipart([routing_id, *frames])

    def send_message(self, routing_id: bytes, command: wire.Command,
                     *bodies: wire.Body) -> None:
        self.send(routing_id, wire.encode(wire.Message(wire.Role.BROKER, command, bodies)))

    def close(self) -> None:
        self.sock.close()
        self.context.term()


@pytest.fixture
def fake_broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    try:
        yield fake
    finally:
        fake.close()
