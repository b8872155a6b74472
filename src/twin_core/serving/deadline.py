"""Why a request was cancelled: its client left, or it ran past ``TWIN_SERVE_REQUEST_TIMEOUT_S``.

The gateway cancels the request in both cases, and the models see the same ``CancelledError``. A client that
left is the client's doing (request log status ``cancelled``, which the drift check and the canary analysis
do not count); a request the server could not answer in time is the server's failure: status ``error``, and
an ``error`` of the version that served it in ``twin_model_requests_total``, so a canary that hangs is
rolled back like one that fails. The gateway puts a ``Deadline`` in the request's context before it runs
the app and marks it before it cancels for time; ``outcome`` reads it.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass

from twin_core.errors import TwinError


@dataclass
class Deadline:
    timeout_s: float
    passed: bool = False


class RequestTimedOut(TwinError):
    """A request cancelled by the gateway's timeout (it answered 504)."""

    kind = "timeout"
    http_status = 504


DEADLINE: ContextVar[Deadline | None] = ContextVar("twin_request_deadline", default=None)


def timed_out() -> bool:
    """Whether the current request was cancelled because it ran past its deadline."""
    deadline = DEADLINE.get()
    return deadline is not None and deadline.passed


def outcome(exc: BaseException) -> BaseException:
    """``exc``, or a ``RequestTimedOut`` (with the served version's marks) when ``exc`` is the cancellation
    of a request that ran past its deadline."""
    deadline = DEADLINE.get()
    if not isinstance(exc, asyncio.CancelledError) or deadline is None or not deadline.passed:
        return exc
    timeout = RequestTimedOut(f"request timed out after {deadline.timeout_s:g} s (TWIN_SERVE_REQUEST_TIMEOUT_S)")
    for mark in ("served_version", "served_stage"):
        if hasattr(exc, mark):
            setattr(timeout, mark, getattr(exc, mark))
    return timeout


def cancel_reason() -> str:
    """``twin_batch_cancelled_total``'s reason for a generation that was cancelled."""
    return "timeout" if timed_out() else "client_gone"


def cancel_status() -> str:
    """``twin_model_requests_total``'s status for a generation that was cancelled."""
    return "error" if timed_out() else "cancelled"
