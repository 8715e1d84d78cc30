"""The caller's gRPC deadline, carried to every upstream call of the request.

Python gRPC does not propagate deadlines by itself: the servicer records ``context.time_remaining()``
here, and the upstream client derives each HTTP timeout from what is left, so an upstream call never
outlives the caller that is waiting for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token

from .errors import DeadlineTooShort

#: Kept back from the caller's deadline, from every upstream call's timeout and from the wait for a
#: detached refresh or exchange, so the gateway's own answer (its reason and RetryInfo) reaches the
#: caller before grpc's bare DEADLINE_EXCEEDED does. It has to cover building and sending that answer
#: and the time the request spent in transit before the server started counting: tens of milliseconds
#: on a loaded 2-core host, where waiting to the last moment lost that race.
SAFETY_MARGIN = 0.1
#: Below this, a call cannot usefully reach an upstream (50 ms for the call itself beyond the margin),
#: so it is refused before anything is sent.
MINIMUM_BUDGET = SAFETY_MARGIN + 0.05

_deadline: ContextVar[float | None] = ContextVar("broker_gateway_deadline", default=None)


@contextlib.contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Run the block under a deadline ``seconds`` from now (no deadline when None)."""
    token = enter(seconds)
    try:
        yield
    finally:
        leave(token)


def enter(seconds: float | None) -> Token[float | None]:
    """Set a deadline ``seconds`` from now; ``leave`` with the result restores the previous one. The
    per-call form of ``deadline_in``, without a generator's cost on every RPC."""
    return _deadline.set(None if seconds is None else time.monotonic() + seconds)


def leave(token: Token[float | None]) -> None:
    _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline, or None when the caller set none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def upstream_timeout(cap: float) -> float:
    """The timeout for one upstream call: what the caller has left, less a margin, at most ``cap``."""
    left = remaining()
    if left is None:
        return cap
    if left < MINIMUM_BUDGET:
        raise DeadlineTooShort(
            "too little of the deadline is left to call the provider",
            metadata={"remaining_ms": str(max(0, int(left * 1000)))},
        )
    return min(cap, left - SAFETY_MARGIN)


def require_budget() -> None:
    """Refuse the call now if the deadline leaves no room for an upstream call."""
    upstream_timeout(cap=1.0)
