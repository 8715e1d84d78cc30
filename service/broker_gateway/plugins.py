"""Discovery of plugins and the registry of provider types they register.

Every provider, built-in or third-party, arrives through the ``broker_gateway`` entry-point group.
``BROKER_GATEWAY_LOAD_PLUGINS`` (comma-separated entry-point names, empty for none) limits which load;
``BROKER_GATEWAY_BLOCK_PLUGINS`` blocks some by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING

import pluggy

from . import hookspecs

if TYPE_CHECKING:
    from .provider import Provider
    from .sandbox import SandboxUpstream

GROUP = "broker_gateway"
LOAD_ENV = "BROKER_GATEWAY_LOAD_PLUGINS"
BLOCK_ENV = "BROKER_GATEWAY_BLOCK_PLUGINS"


class PluginError(Exception):
    """A plugin failed to load or registered something invalid."""


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def plugin_manager(extra_plugins: Iterable[ModuleType | object] = ()) -> pluggy.PluginManager:
    """A fresh manager with the entry-point plugins (filtered by the environment) and ``extra_plugins``
    registered; a misspelt hook implementation fails here rather than being silently ignored."""
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    allowed = _names(os.environ.get(LOAD_ENV))
    for name in _names(os.environ.get(BLOCK_ENV)) or ():
        manager.set_blocked(name)
    for entry_point in entry_points(group=GROUP):
        if manager.is_blocked(entry_point.name) or (allowed is not None and entry_point.name not in allowed):
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken third-party plugin must say which one it is
            raise PluginError(f"plugin {entry_point.name!r} failed to load: {error}") from error
        manager.register(plugin, name=entry_point.name)
    for plugin in extra_plugins:
        manager.register(plugin)
    manager.check_pending()
    return manager


def provider_types(manager: pluggy.PluginManager) -> dict[str, type[Provider]]:
    """Every registered provider class, keyed by its ``type``."""
    registry: dict[str, type[Provider]] = {}

    def register(provider_class: type[Provider]) -> None:
        name = getattr(provider_class, "type", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{provider_class!r} has no `type` name")
        if name in registry:
            raise PluginError(f"provider type {name!r} is registered twice")
        registry[name] = provider_class

    manager.hook.broker_gateway_register_providers(register=register)
    return registry


def sandbox_upstreams(manager: pluggy.PluginManager) -> list[SandboxUpstream]:
    """Every registered simulator, in registration order."""
    upstreams: list[SandboxUpstream] = []
    manager.hook.broker_gateway_register_sandboxes(register=upstreams.append)
    return upstreams
