"""A shared rate limiter's answer, awaited right before a call's request leaves, not before its provider starts.

With limits in Redis, admitting a call is a network round trip. Waiting for it before the provider
runs puts that round trip, one for one, on every call's latency, while the provider's own work before
it sends (reading the params, signing, building the HTTP request) could run meanwhile. So for a
limiter whose acquire waits on the network the gateway starts the acquire as a task and runs the
provider inside ``admitting(task)``; ``UpstreamClient`` awaits ``admitted()`` right before it sends.
Nothing leaves before the limiter said yes, a refused call sends nothing, and its refusal stays the
call's error (``Gateway.invoke`` makes sure of it even when the provider failed first).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_pending: ContextVar[asyncio.Future[None] | None] = ContextVar("broker_gateway_admission", default=None)


@contextlib.contextmanager
def admitting(admission: asyncio.Future[None]) -> Iterator[None]:
    """Upstream requests made inside the block wait for ``admission`` first."""
    token = _pending.set(admission)
    try:
        yield
    finally:
        _pending.reset(token)


async def admitted() -> None:
    """Return once the current call is admitted (at once outside ``admitting``); raise the limiter's
    refusal otherwise."""
    admission = _pending.get()
    if admission is not None:
        await admission
