"""Python client and worker library for Yard, the ZeroMQ task broker.

Written from ``proto/PROTOCOL.md`` (YARD/1). :class:`Client` submits tasks
and uses the event bus, :class:`Worker` serves a service, :mod:`yard.wire`
is the wire format on its own.
"""

from ._version import __version__
from .client import Client, Result, TaskFuture
from .errors import (
    BrokerUnreachableError,
    CancelledError,
    CircuitOpenError,
    InvalidError,
    RejectedError,
    ShutdownError,
    TaskError,
    TimeoutError,
    YardError,
)
from .events import Event, Subscription
from .wire import Status
from .worker import Handler, Job, Reject, Worker

__all__ = [
    "BrokerUnreachableError",
    "CancelledError",
    "CircuitOpenError",
    "Client",
    "Event",
    "Handler",
    "InvalidError",
    "Job",
    "Reject",
    "RejectedError",
    "Result",
    "ShutdownError",
    "Status",
    "Subscription",
    "TaskError",
    "TaskFuture",
    "TimeoutError",
    "Worker",
    "YardError",
    "__version__",
]
