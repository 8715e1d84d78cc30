"""The hooks a BrokerGateway plugin may implement.

Hooks run once, when the gateway builds its registries at start-up; nothing per request goes through
pluggy. ``docs/plugins.md`` documents each hook under a heading with its signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .provider import Provider
    from .sandbox import SandboxUpstream

#: The public API (docs/plugins.md, "Public API"); anything else here may change without notice.
__all__ = [
    "broker_gateway_register_providers",
    "broker_gateway_register_sandboxes",
    "hookspec",
]

hookspec = pluggy.HookspecMarker("broker_gateway")


@hookspec
def broker_gateway_register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register provider types.

    :param register: call it once per provider class; the class's ``type`` is the name configuration
        entries use. Registering a type twice is an error.

    Called once at start-up, before the configuration instantiates providers.
    """


@hookspec
def broker_gateway_register_sandboxes(register: Callable[[SandboxUpstream], None]) -> None:
    """Register local simulators for ``broker-gateway sandbox``.

    :param register: call it once per simulator; its ``provider_id`` becomes a provider of the sandbox.

    Called once when the sandbox starts; the server proper never calls it, so a plugin imports its
    simulator inside the ``build`` it registers and ``serve`` never loads it.
    """
