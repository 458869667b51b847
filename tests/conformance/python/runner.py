#!/usr/bin/python3
"""The Python runner of the conformance suite (tests/conformance/README.md).

    runner.py worker --broker EP --service NAME --capacity N --lang LANG
    runner.py client --broker EP --events EP < program.json

``worker`` serves one service with a :class:`yard.Worker` whose handler
does what each task's JSON payload asks (its ``op``); ``client`` runs a
program of steps with a :class:`yard.Client` and prints one JSON object per
observation. Both use only the public interface of the ``yard`` package in
``clients/python``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "clients" / "python"))
import yard  # noqa: E402

# YARD_MAX_PAYLOAD + 1: one byte more than a result payload may hold.
OVERSIZE_BYTES = 4194305
# How long a stopping worker lets held tasks finish (run.py allows 5 s after SIGTERM).
STOP_GRACE_MS = 3000

Observation = dict[str, Any]


# ---------------------------------------------------------------- worker


class TaskFailed(Exception):
    """A task fails: on request (op ``fail``) or because its payload is not understood."""


def parse_request(payload: bytes) -> dict[str, Any]:
    """The task's JSON object, which must name an ``op``; TaskFailed otherwise."""
    try:
        request = json.loads(payload)
    except ValueError as exc:
        raise TaskFailed(f"payload is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise TaskFailed("payload is not a JSON object")
    if "op" not in request:
        raise TaskFailed("payload has no op")
    if not isinstance(request["op"], str):
        raise TaskFailed("op is not a string")
    return request


def op_echo(job: yard.Job, request: dict[str, Any], lang: str) -> bytes:
    """The payload, unchanged."""
    return job.payload


def op_whoami(job: yard.Job, request: dict[str, Any], lang: str) -> bytes:
    """Exactly ``{"lang":"LANG"}``."""
    return json.dumps({"lang": lang}, separators=(",", ":")).encode()


def op_fail(job: yard.Job, request: dict[str, Any], lang: str) -> bytes:
    """Fail with the request's ``error`` text."""
    raise TaskFailed(str(request.get("error", "failed on request")))


def op_sleep(job: yard.Job, request: dict[str, Any], lang: str) -> bytes:
    """Wait ``ms`` milliseconds, or less if the job is cancelled meanwhile.

    ``wait_cancelled`` wakes as soon as the broker cancels the job; the
    library then answers the task ``cancelled`` whatever is returned here.
    """
    ms = request.get("ms")
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
        raise TaskFailed("sleep needs ms, a number of milliseconds >= 0")
    job.wait_cancelled(ms / 1000)
    return job.payload


def op_crash_once(job: yard.Job, request: dict[str, Any], lang: str) -> bytes:
    """Create the ``marker`` file and die by SIGKILL; echo if it already exists."""
    marker = request.get("marker")
    if not isinstance(marker, str) or not marker:
        raise TaskFailed("crash_once needs marker, a file path")
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return job.payload
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("SIGKILL did not end the process")


def op_oversize(job: yard.Job, request: dict[str, Any], lang: str) -> bytes:
    """A result payload one byte over the protocol's limit (the library must refuse it)."""
    return b"x" * OVERSIZE_BYTES


OPS: dict[str, Callable[[yard.Job, dict[str, Any], str], bytes]] = {
    "echo": op_echo,
    "whoami": op_whoami,
    "fail": op_fail,
    "sleep": op_sleep,
    "crash_once": op_crash_once,
    "oversize": op_oversize,
}


def handle(job: yard.Job, lang: str) -> bytes:
    """Run the op the task's payload names."""
    request = parse_request(job.payload)
    op = OPS.get(request["op"])
    if op is None:
        raise TaskFailed(f"unknown op {request['op']!r}")
    return op(job, request, lang)


def run_worker(args: argparse.Namespace) -> int:
    """Serve the service until SIGTERM (a graceful stop); 1 if the broker refused us."""
    worker = yard.Worker(args.broker, name=f"conformance-{args.lang}-{os.getpid()}",
                         capacity=args.capacity, grace_ms=STOP_GRACE_MS)
    worker.handler(args.service)(functools.partial(handle, lang=args.lang))
    try:
        worker.run()
    except yard.YardError as exc:
        print(f"runner.py worker: {exc}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- client


class ProgramError(Exception):
    """A step the runner cannot run (a bad program, or the library refused the step)."""


@dataclass(eq=False)
class Tracked:
    """A submitted task: its future, and when its outcome reached the client."""

    future: Future[yard.Result]
    task_id: Optional[str]
    arrived: threading.Event = field(default_factory=threading.Event)
    order: int = 0


def need(step: dict[str, Any], key: str, kind: type, what: str) -> Any:
    """``step[key]``, which must be of ``kind`` (never a bool for int)."""
    value = step.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProgramError(f"{key} must be {what}")
    return value


def need_ms(step: dict[str, Any], key: str) -> float:
    """``step[key]``, a number of milliseconds >= 0, in seconds."""
    ms = need(step, key, int, "an integer")
    if ms < 0:
        raise ProgramError(f"{key} must not be negative")
    return ms / 1000


def cache_policy(value: Any) -> Optional[dict[str, Any]]:
    """A step's ``cache``: ``true`` (the cache's defaults), a policy object, or ``false`` (none)."""
    if value is True:
        return {}
    if value is False:
        return None
    if isinstance(value, dict):
        return value
    raise ProgramError("cache must be true, false or an object")


def observe(future: Future[yard.Result]) -> Observation:
    """A finished task's outcome as the fields of a ``wait`` observation."""
    error = future.exception()
    if error is None:
        result = future.result()
        return {"status": str(result.status), "payload": result.payload.decode("utf-8", "replace"),
                "error": "", "attempts": result.attempts, "cached": result.cached,
                "retry_after_ms": 0}
    # A task future ends with a subclass of YardError that names its status.
    assert isinstance(error, yard.YardError) and error.status is not None, error
    retry_after_ms = error.retry_after_ms if isinstance(error, yard.RejectedError) else 0
    return {"status": str(error.status), "payload": "", "error": error.message,
            "attempts": error.attempts, "cached": False, "retry_after_ms": retry_after_ms}


def event_text(payload: Any) -> str:
    """An event's decoded msgpack payload as a string."""
    if payload is None:
        return ""
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return str(payload)


def emit(observation: Observation) -> None:
    """Print one observation as a compact JSON line, flushed."""
    sys.stdout.write(json.dumps(observation, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class ClientRunner:
    """Runs a program's steps with one client."""

    def __init__(self, client: yard.Client) -> None:
        self.client = client
        self.tasks: dict[str, Tracked] = {}
        self.subscriptions: dict[str, yard.Subscription] = {}
        self._lock = threading.Lock()
        self._arrivals = 0
        self._steps: dict[str, Callable[[dict[str, Any]], Optional[Observation]]] = {
            "submit": self.submit,
            "wait": self.wait,
            "cancel": self.cancel,
            "sleep": self.sleep,
            "subscribe": self.subscribe,
            "publish": self.publish,
            "next_event": self.next_event,
        }

    def run(self, steps: list[Any]) -> None:
        """Run every step in order, printing what each observes."""
        for index, step in enumerate(steps):
            try:
                if not isinstance(step, dict):
                    raise ProgramError("a step must be a JSON object")
                do = step.get("do")
                run_step = self._steps.get(do) if isinstance(do, str) else None
                if run_step is None:
                    raise ProgramError(f"unknown step {do!r}")
                observation = run_step(step)
            except (ProgramError, yard.YardError) as exc:
                raise ProgramError(f"step {index}: {exc}") from exc
            if observation is not None:
                emit({"step": index, **observation})

    def close(self) -> None:
        """Close the subscriptions and the client (outstanding tasks are dropped)."""
        for subscription in self.subscriptions.values():
            subscription.close()
        self.client.close()

    def _task(self, step: dict[str, Any]) -> tuple[str, Tracked]:
        """The task a step names in ``task``."""
        name = need(step, "task", str, "a task name")
        tracked = self.tasks.get(name)
        if tracked is None:
            raise ProgramError(f"no task {name!r} was submitted")
        return name, tracked

    def _arrived(self, tracked: Tracked, future: Future[yard.Result]) -> None:
        """A done-callback: number the outcome in order of arrival."""
        with self._lock:
            self._arrivals += 1
            tracked.order = self._arrivals
        tracked.arrived.set()

    def submit(self, step: dict[str, Any]) -> None:
        """Send a task without waiting; a task the library refuses at once ends ``invalid``."""
        name = need(step, "as", str, "a task name")
        if name in self.tasks:
            raise ProgramError(f"task {name!r} was already submitted")
        service = need(step, "service", str, "a string")
        payload = need(step, "payload", str, "a string")
        options: dict[str, Any] = {key: need(step, key, int, "an integer")
                                   for key in ("timeout_ms", "retries", "backoff_ms", "priority")
                                   if key in step}
        if "cache" in step:
            options["cache"] = cache_policy(step["cache"])
        future: Future[yard.Result]
        try:
            task_future = self.client.submit(service, payload.encode(), **options)
            future, task_id = task_future, task_future.task_id
        except yard.InvalidError as exc:
            future, task_id = Future(), exc.task_id
            future.set_exception(exc)
        tracked = Tracked(future, task_id)
        self.tasks[name] = tracked
        future.add_done_callback(functools.partial(self._arrived, tracked))

    def wait(self, step: dict[str, Any]) -> Observation:
        """Wait up to ``timeout_ms`` for a task's outcome."""
        name, tracked = self._task(step)
        if not tracked.arrived.wait(need_ms(step, "timeout_ms")):
            return {"task": name, "status": "no_outcome"}
        return {"task": name, **observe(tracked.future), "order": tracked.order}

    def cancel(self, step: dict[str, Any]) -> None:
        """Ask the broker to cancel a task (nothing to do if it already ended)."""
        _, tracked = self._task(step)
        if tracked.task_id is not None:
            self.client.cancel(tracked.task_id)

    def sleep(self, step: dict[str, Any]) -> None:
        """Wait ``ms``; outcomes arriving meanwhile are kept by their futures."""
        time.sleep(need_ms(step, "ms"))

    def subscribe(self, step: dict[str, Any]) -> None:
        """Open a subscription; returns once the broker acknowledged it."""
        name = need(step, "as", str, "a subscription name")
        if name in self.subscriptions:
            raise ProgramError(f"subscription {name!r} already exists")
        prefixes = need(step, "prefixes", list, "a list of strings")
        if not all(isinstance(prefix, str) for prefix in prefixes):
            raise ProgramError("prefixes must be a list of strings")
        self.subscriptions[name] = self.client.subscribe(prefixes)

    def publish(self, step: dict[str, Any]) -> Observation:
        """Publish an event whose payload is a msgpack str, waiting for PUBLISH_ACK."""
        event_type = need(step, "type", str, "a string")
        payload = need(step, "payload", str, "a string")
        try:
            self.client.publish(event_type, payload, confirm=True)
        except yard.YardError as exc:
            return {"published": False, "error": exc.message}
        return {"published": True}

    def next_event(self, step: dict[str, Any]) -> Observation:
        """The next event a subscription receives, or type null after ``timeout_ms``."""
        name = need(step, "sub", str, "a subscription name")
        subscription = self.subscriptions.get(name)
        if subscription is None:
            raise ProgramError(f"no subscription {name!r}")
        try:
            event = subscription.get(need_ms(step, "timeout_ms"))
        except yard.TimeoutError:
            return {"sub": name, "type": None}
        return {"sub": name, "type": event.type, "payload": event_text(event.payload)}


def read_program() -> list[Any]:
    """The steps of the program on standard input."""
    try:
        program = json.load(sys.stdin)
    except ValueError as exc:
        raise ProgramError(f"the program is not JSON: {exc}") from None
    if not isinstance(program, dict) or not isinstance(program.get("steps"), list):
        raise ProgramError('the program must be an object {"steps": [...]}')
    return program["steps"]


def run_client(args: argparse.Namespace) -> int:
    """Run the program on standard input; 1 with the reason on stderr if a step cannot run."""
    try:
        steps = read_program()
    except ProgramError as exc:
        print(f"runner.py client: {exc}", file=sys.stderr)
        return 1
    runner = ClientRunner(yard.Client(args.broker, events_endpoint=args.events))
    try:
        runner.run(steps)
    except ProgramError as exc:
        print(f"runner.py client: {exc}", file=sys.stderr)
        return 1
    finally:
        runner.close()
    return 0


# ---------------------------------------------------------------- main


def main() -> int:
    """Parse the command line and run the chosen mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    worker = modes.add_parser("worker", help="serve a service until SIGTERM")
    worker.add_argument("--broker", required=True)
    worker.add_argument("--service", required=True)
    worker.add_argument("--capacity", required=True, type=int)
    worker.add_argument("--lang", required=True)
    worker.set_defaults(run=run_worker)
    client = modes.add_parser("client", help="run the program on standard input")
    client.add_argument("--broker", required=True)
    client.add_argument("--events", required=True)
    client.set_defaults(run=run_client)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format=f"runner.py {args.mode}: %(message)s")
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
