"""Registers the ``bybit`` provider type and the ``bybit`` sandbox simulator."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

from broker_gateway.provider import Provider, hookimpl
from broker_gateway.sandbox import SandboxEnvironment, SandboxParts, SandboxUpstream

from .provider import BybitProvider


@hookimpl
def broker_gateway_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(BybitProvider)


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def build_bybit(environment: SandboxEnvironment) -> SandboxParts:
    """The Bybit simulator, one OAuth client registered for the sandbox redirect URI and one exchange
    broker's V5 key (18 and 36 characters, shaped like Bybit's); the provider points every Bybit host
    (OAuth page, OAuth API, V5 API) at the simulator."""
    # Only the sandbox calls this: serve never imports the simulator, Starlette or uvicorn.
    from .sandbox import AUTHORIZE_PATH, BrokerKey, BybitClient, bybit_uid, create_bybit_app

    client = BybitClient("sandbox-bybit-client", secrets.token_urlsafe(24), (environment.redirect_uri,))
    key = BrokerKey(
        api_key=_random(string.ascii_uppercase + string.digits, 18),
        api_secret=_random(string.ascii_letters + string.digits, 36),
        uid=bybit_uid("sandbox-broker"),
    )
    base = environment.base_url
    settings = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "oauth_base_url": base,
        "api_base_url": base,
        "broker_api_key": key.api_key,
        "broker_api_secret": key.api_secret,
        "registered_redirect_uris": list(client.redirect_uris),
    }
    return SandboxParts(
        app=create_bybit_app([client], [key]),
        provider_type=BybitProvider.type,
        provider_settings=settings,
        credentials={
            "client_id": client.client_id,
            "client_secret": client.client_secret or "",
            "api_key": key.api_key,
            "api_secret": key.api_secret,
            "broker_uid": str(key.uid),
        },
    )


@hookimpl
def broker_gateway_register_sandboxes(register: Callable[[SandboxUpstream], None]) -> None:
    register(SandboxUpstream(provider_id="bybit", build=build_bybit))
