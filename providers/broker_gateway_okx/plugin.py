"""Registers the ``okx`` provider type and the ``okx`` sandbox simulator."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from broker_gateway.provider import Provider, hookimpl
from broker_gateway.sandbox import SandboxEnvironment, SandboxParts, SandboxUpstream

from .provider import OKXProvider

#: The sandbox broker's code; every order placed through the sandbox carries it in ``tag``.
SANDBOX_BROKER_CODE = "SandboxBroker01"


@hookimpl
def broker_gateway_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OKXProvider)


def build_okx(environment: SandboxEnvironment) -> SandboxParts:
    """The OKX simulator and an ``okx`` provider in authorization-code mode against it.

    The simulator also registers a PKCE-mode application (``pkce_client_id`` in sandbox.json), so a
    second provider entry with ``mode = "pkce"`` can be configured against the same simulator.
    """
    # Only the sandbox calls this: serve never imports the simulator, Starlette or uvicorn.
    from .sandbox import AUTHORIZE_PATH, TOKEN_PATH, BrokerKey, OkxClient, create_okx_app

    code_client = OkxClient("sandbox-okx-client", secrets.token_urlsafe(24), (environment.redirect_uri,))
    pkce_client = OkxClient("sandbox-okx-pkce-client", None, (environment.redirect_uri,))
    key = BrokerKey(
        api_key=secrets.token_hex(16),
        secret_key=secrets.token_hex(16).upper(),
        passphrase="Sandbox-" + secrets.token_urlsafe(12),
    )
    base = environment.base_url
    settings = {
        "mode": "code",
        "client_id": code_client.client_id,
        "client_secret": code_client.client_secret,
        "broker_code": SANDBOX_BROKER_CODE,
        "api_key": key.api_key,
        "secret_key": key.secret_key,
        "passphrase": key.passphrase,
        "sites": {"www": base},
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "default_scopes": ["read_only", "trade"],
    }
    return SandboxParts(
        app=create_okx_app(clients=[code_client, pkce_client], broker_key=key, broker_code=SANDBOX_BROKER_CODE),
        provider_type=OKXProvider.type,
        provider_settings=settings,
        credentials={
            "client_id": code_client.client_id,
            "client_secret": code_client.client_secret or "",
            "pkce_client_id": pkce_client.client_id,
            "api_key": key.api_key,
            "secret_key": key.secret_key,
            "passphrase": key.passphrase,
            "broker_code": SANDBOX_BROKER_CODE,
            "token_path": TOKEN_PATH,
        },
    )


@hookimpl
def broker_gateway_register_sandboxes(register: Callable[[SandboxUpstream], None]) -> None:
    register(SandboxUpstream(provider_id="okx", build=build_okx))
