"""The plugin author's testing kit (``pip install broker-gateway[testing]``; docs/plugins.md,
"Testing your plugin").

Its pytest plugin (``broker_gateway.testing.plugin``, loaded through the ``pytest11`` entry point)
gives the fixtures ``fake_clock``, ``local_upstream``, ``start_gateway`` and ``leak_watch``; the names
below are for tests and helpers of one's own; ``broker_gateway.testing.conformance`` is the provider
conformance suite. The names load on first use, so the plugin costs a pytest run nothing until a
test uses the kit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import ProviderConfig
    from ..sandbox.asgi import serve_asgi
    from .clock import FakeClock
    from .context import RequestHandler, provider_context
    from .failures import Failure, expect_failure, failure_of
    from .gateway import REDIRECT_URI, Approve, GatewayHarness, connect, gateway_config, running_gateway
    from .leaks import LeakWatch, assert_no_secret_leaks, plant_authorization_secrets
    from .sandbox import free_port, running_sandbox, sandbox_console
    from .upstream import LocalUpstream, Outage, approve_with_shortcut, callback_params, serve_upstream

#: Where each public name lives, for the imports on first use.
_MODULES = {
    "ProviderConfig": "..config",
    "FakeClock": ".clock",
    "RequestHandler": ".context",
    "provider_context": ".context",
    "Failure": ".failures",
    "expect_failure": ".failures",
    "failure_of": ".failures",
    "REDIRECT_URI": ".gateway",
    "connect": ".gateway",
    "Approve": ".gateway",
    "GatewayHarness": ".gateway",
    "gateway_config": ".gateway",
    "running_gateway": ".gateway",
    "LeakWatch": ".leaks",
    "assert_no_secret_leaks": ".leaks",
    "plant_authorization_secrets": ".leaks",
    "free_port": ".sandbox",
    "running_sandbox": ".sandbox",
    "sandbox_console": ".sandbox",
    "LocalUpstream": ".upstream",
    "Outage": ".upstream",
    "approve_with_shortcut": ".upstream",
    "callback_params": ".upstream",
    "serve_asgi": ".upstream",
    "serve_upstream": ".upstream",
}

__all__ = [
    "REDIRECT_URI",
    "Approve",
    "Failure",
    "FakeClock",
    "GatewayHarness",
    "LeakWatch",
    "LocalUpstream",
    "Outage",
    "ProviderConfig",
    "RequestHandler",
    "approve_with_shortcut",
    "assert_no_secret_leaks",
    "callback_params",
    "connect",
    "expect_failure",
    "failure_of",
    "free_port",
    "gateway_config",
    "plant_authorization_secrets",
    "provider_context",
    "running_gateway",
    "running_sandbox",
    "sandbox_console",
    "serve_asgi",
    "serve_upstream",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
