"""The signed InvokeOperation row: OKX ``dma.list_subaccounts`` against nginx's canned answer.

The row runs only when a ``broker_gateway_okx`` plugin registers provider type ``okx``, accepts the
configuration of ``provider_entry`` and answers one InvokeOperation; otherwise the table says why it
is skipped ("okx provider not installed", the configuration problems, or the error of that first
call). Nothing stands in for the provider: the real one signs every call (HMAC-SHA256 over timestamp,
method, path with query and body, docs/design/exchanges.md) with the broker key below, and nginx answers
GET ``/api/v5/broker/dma/subaccount-info`` with the canned envelope of ``upstream.py``. The
pass-through floor makes the same GET with the same query, unsigned.

The provider's own client-side rate limit for this operation (10 per second, OKX's documented
budget) is raised through its ``rate_limits`` setting, so the limiter still runs on every call but
never refuses one.
"""

from __future__ import annotations

import os
from typing import Any

from .upstream import OKX_PARAMS

PROVIDER_ID = "okx"
OPERATION = "dma.list_subaccounts"
PARAMS: dict[str, Any] = dict(OKX_PARAMS)
#: The test vectors' secret (docs/design/exchanges.md, OKX signing): a dummy, never a real key.
SECRET_KEY = "22582BD0CFF14C41EDBF1AB98506286D"
#: The operation's raised limit: checked on every call, never refusing one.
RAISED_LIMIT = {"requests": 1_000_000, "per_seconds": 1}


def provider_entry(upstream: str) -> dict[str, Any]:
    """The ``[[providers]]`` entry for the okx provider, its one site (and so every call) on
    ``upstream`` (nginx), with a broker API key so the DMA operations are offered."""
    return {
        "id": PROVIDER_ID,
        "type": "okx",
        "redirect_uris": ["http://127.0.0.1:9/callback"],
        "allow_insecure_http": True,  # loopback nginx
        "client_id": "bench-okx-client",
        "client_secret": "bench-okx-client-secret",
        "broker_code": "bench01",
        "api_key": "bench-broker-api-key",
        "secret_key": SECRET_KEY,
        "passphrase": "Bench-Passphrase-1!",
        "sites": {"www": upstream},
        "default_site": "www",
        "authorization_endpoint": upstream + "/account/oauth/authorize",
        "rate_limits": {OPERATION: RAISED_LIMIT},
    }


def availability() -> str | None:
    """None when type ``okx`` is registered; otherwise why the row is skipped."""
    from broker_gateway.plugins import PluginError, plugin_manager, provider_types

    previous = os.environ.get("BROKER_GATEWAY_LOAD_PLUGINS")
    os.environ["BROKER_GATEWAY_LOAD_PLUGINS"] = "oauth2,okx"
    try:
        registered = provider_types(plugin_manager())
    except PluginError as error:
        return f"okx provider not installed ({error})"
    finally:
        if previous is None:
            os.environ.pop("BROKER_GATEWAY_LOAD_PLUGINS")
        else:
            os.environ["BROKER_GATEWAY_LOAD_PLUGINS"] = previous
    return None if "okx" in registered else "okx provider not installed"


def configuration_problems(upstream: str) -> list[str]:
    """What the okx provider says about ``provider_entry`` (empty when it accepts it)."""
    import asyncio

    from broker_gateway.app import http_client, instantiate_providers, utc_now
    from broker_gateway.config import parse_config
    from broker_gateway.errors import ConfigError
    from broker_gateway.plugins import plugin_manager, provider_types
    from broker_gateway.store.crypto import generate_key

    document = {
        "store": {"path": ":memory:"},
        "encryption": {"keys": [{"id": "k", "key": generate_key()}]},
        "providers": [provider_entry(upstream)],
    }

    async def check() -> list[str]:
        http = http_client()
        try:
            config = parse_config(document)
            previous = os.environ.get("BROKER_GATEWAY_LOAD_PLUGINS")
            os.environ["BROKER_GATEWAY_LOAD_PLUGINS"] = "oauth2,okx"
            try:
                instantiate_providers(config, provider_types(plugin_manager()), http, utc_now)
            finally:
                if previous is None:
                    os.environ.pop("BROKER_GATEWAY_LOAD_PLUGINS")
                else:
                    os.environ["BROKER_GATEWAY_LOAD_PLUGINS"] = previous
        except ConfigError as error:
            return list(error.problems)
        finally:
            await http.aclose()
        return []

    return asyncio.run(check())
