"""An ASGI app (a simulator of the upstream a provider talks to) served as a local upstream, and the
browser's part of a consent: approving an authorization URL and reading the callback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
from starlette.types import ASGIApp

from ..sandbox.asgi import serve_asgi
from .gateway import REDIRECT_URI

__all__ = ["LocalUpstream", "approve_with_shortcut", "callback_params", "serve_asgi", "serve_upstream"]


@dataclass(frozen=True)
class LocalUpstream:
    """An ASGI app served on loopback at ``base_url`` (providers reach it with ``allow_insecure_http``).
    ``app`` is the object served, typed loosely since tests reach into their simulator's own state."""

    base_url: str
    app: Any


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
