"""A ``ProviderContext`` for testing one provider instance without a gateway around it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import httpx

from ..provider import ProviderContext
from ..upstream import UpstreamClient
from .clock import FakeClock

#: A function answering each request the provider sends, for ``httpx.MockTransport``.
RequestHandler = Callable[[httpx.Request], httpx.Response]


def provider_context(
    provider_id: str = "test",
    *,
    clock: Callable[[], datetime] | None = None,
    handler: RequestHandler | None = None,
    http: httpx.AsyncClient | None = None,
    allow_insecure_http: bool = False,
) -> ProviderContext:
    """The context the gateway would give a provider: its HTTP goes through the real
    ``UpstreamClient`` (deadlines, size caps, error mapping), to ``handler`` when given (an
    ``httpx.MockTransport``), else through ``http`` or a plain client to the network; ``clock``
    defaults to a new ``FakeClock``."""
    if http is None:
        http = httpx.AsyncClient(transport=None if handler is None else httpx.MockTransport(handler))
    return ProviderContext(
        provider_id=provider_id,
        http=UpstreamClient(http, provider_id),
        clock=clock or FakeClock().now,
        logger=logging.getLogger(f"broker_gateway.providers.{provider_id}"),
        allow_insecure_http=allow_insecure_http,
    )
