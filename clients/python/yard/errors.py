"""Exceptions, one per non-``ok`` task status (PROTOCOL.md 6.1)."""

from __future__ import annotations

import builtins
from typing import ClassVar, Optional

from .wire import Status


class YardError(Exception):
    """Base class of every error this library raises about a task or the broker.

    ``message`` is the error text (for a task, the RESULT's ``error``),
    ``task_id`` the task it concerns, if any, and ``attempts`` the dispatches
    the broker made for it.
    """

    status: ClassVar[Optional[Status]] = None

    def __init__(self, message: str, *, task_id: Optional[str] = None,
                 attempts: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id
        self.attempts = attempts

    def __str__(self) -> str:
        return f"{self.task_id}: {self.message}" if self.task_id else self.message


class TaskError(YardError):
    """The handler failed and the broker had no retry left (status ``error``)."""

    status = Status.ERROR


class TimeoutError(YardError, builtins.TimeoutError):
    """The task's deadline passed (status ``timeout``)."""

    status = Status.TIMEOUT


class BrokerUnreachableError(TimeoutError):
    """No answer from the broker in time: the client gave up locally (8.3)."""


class RejectedError(YardError):
    """The service's queue was full (status ``rejected``); retry after ``retry_after_ms``."""

    status = Status.REJECTED

    def __init__(self, message: str, *, task_id: Optional[str] = None, attempts: int = 0,
                 retry_after_ms: int = 0) -> None:
        super().__init__(message, task_id=task_id, attempts=attempts)
        self.retry_after_ms = retry_after_ms


class CircuitOpenError(RejectedError):
    """The service's circuit breaker is open (status ``circuit_open``).

    ``retry_after_ms`` is how long until the breaker lets trial tasks through.
    """

    status = Status.CIRCUIT_OPEN


class CancelledError(YardError):
    """The task was cancelled (status ``cancelled``), or abandoned by ``Client.close``."""

    status = Status.CANCELLED


class ShutdownError(YardError):
    """The broker stopped before finishing the task (status ``shutdown``)."""

    status = Status.SHUTDOWN


class InvalidError(YardError, ValueError):
    """The request breaks a rule (status ``invalid``): fix it, do not resend it."""

    status = Status.INVALID


_BY_STATUS: dict[Status, type[YardError]] = {
    cls.status: cls
    for cls in (TaskError, TimeoutError, RejectedError, CircuitOpenError, CancelledError,
                ShutdownError, InvalidError)
    if cls.status is not None
}


def error_for(status: Status, message: str, *, task_id: Optional[str] = None,
              attempts: int = 0, retry_after_ms: int = 0) -> YardError:
    """The exception for a task that ended with ``status`` (anything but ``ok``)."""
    cls = _BY_STATUS[status]
    if issubclass(cls, RejectedError):
        return cls(message, task_id=task_id, attempts=attempts, retry_after_ms=retry_after_ms)
    return cls(message, task_id=task_id, attempts=attempts)
