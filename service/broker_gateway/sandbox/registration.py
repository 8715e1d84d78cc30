"""What a plugin registers for ``broker-gateway sandbox`` (``broker_gateway_register_sandboxes``): a
simulator's factory, and what the sandbox tells it and gets back from it.

Plugins import these when the gateway loads them, for ``serve`` too, so this module imports neither
Starlette nor uvicorn (the ``sandbox`` extra): a plugin imports its simulator inside the factory it
registers, which only the sandbox calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["SandboxEnvironment", "SandboxParts", "SandboxUpstream"]


@dataclass(frozen=True)
class SandboxEnvironment:
    """What a simulator is told when the sandbox builds it."""

    #: Where the simulator will be served, e.g. ``http://127.0.0.1:41234``.
    base_url: str
    #: The redirect URI the sandbox registers for every provider.
    redirect_uri: str


@dataclass(frozen=True)
class SandboxParts:
    """A built simulator: its ASGI app, the provider entry for it, and what sandbox.json reports."""

    app: ASGIApp
    provider_type: str
    provider_settings: Mapping[str, Any] = field(repr=False)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SandboxUpstream:
    """A simulator a plugin registers; ``provider_id`` is the id the sandbox's provider gets, and
    ``build`` (called only by the sandbox) imports and builds the simulator."""

    provider_id: str
    build: Callable[[SandboxEnvironment], SandboxParts]
