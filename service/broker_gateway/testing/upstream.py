"""An ASGI app (a simulator of the upstream a provider talks to) served as a local upstream, and the
browser's part of a consent: approving an authorization URL and reading the callback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from ..sandbox.asgi import serve_asgi
from .gateway import REDIRECT_URI

__all__ = ["LocalUpstream", "Outage", "approve_with_shortcut", "callback_params", "serve_asgi", "serve_upstream"]


@dataclass(frozen=True)
class LocalUpstream:
    """An ASGI app served on loopback at ``base_url`` (providers reach it with ``allow_insecure_http``).
    ``app`` is the object served, typed loosely since tests reach into their simulator's own state."""

    base_url: str
    app: Any


class Outage:
    """An upstream's app behind a switch: while ``down`` every request is answered 503, an outage
    that a provider must report as one (UNAVAILABLE), never as a dead grant. Any other attribute is
    the wrapped app's, so tests still reach into their simulator's state through it."""

    def __init__(self, wrapped: ASGIApp) -> None:
        self.wrapped = wrapped
        self.down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.down and scope["type"] == "http":
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"down for maintenance"})
            return
        await self.wrapped(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


@contextlib.asynccontextmanager
async def serve_upstream(app: ASGIApp) -> AsyncIterator[LocalUpstream]:
    """Serve ``app`` on a free loopback port for the block."""
    async with serve_asgi(app) as (base_url, _, _):
        yield LocalUpstream(base_url, app)


def callback_params(response: httpx.Response, redirect_uri: str = REDIRECT_URI) -> Mapping[str, str]:
    """The query parameters of the redirect to ``redirect_uri`` that ends a consent; fails the test
    when ``response`` is anything else."""
    assert response.status_code in (302, 303), f"expected a redirect to the callback, got {response.status_code}: {response.text}"
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?"), f"the redirect goes elsewhere: {urlsplit(location).path}"
    return dict(parse_qsl(urlsplit(location).query))


async def approve_with_shortcut(authorization_url: str, username: str, *, redirect_uri: str = REDIRECT_URI) -> Mapping[str, str]:
    """Approve as ``username`` through the ``approve=<username>`` shortcut of a simulator built on
    ``broker_gateway.sandbox.simkit`` (the built-in ones are); the callback's query parameters."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{authorization_url}&approve={quote(username)}")
    return callback_params(response, redirect_uri)
