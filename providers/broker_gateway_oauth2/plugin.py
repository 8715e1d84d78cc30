"""Registers the ``generic-oauth2`` provider type and the ``wallet`` sandbox simulator."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from broker_gateway.provider import Provider, hookimpl
from broker_gateway.sandbox import SandboxEnvironment, SandboxParts, SandboxUpstream

from .provider import GenericOAuth2Provider


@hookimpl
def broker_gateway_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(GenericOAuth2Provider)


def build_wallet(environment: SandboxEnvironment) -> SandboxParts:
    """The wallet simulator and a generic-oauth2 entry serving it by configuration alone."""
    # Only the sandbox calls this: serve never imports the simulator, Starlette or uvicorn.
    from .sandbox import AUTHORIZE_PATH, SCOPES, TOKEN_PATH, USERINFO_PATH, WalletClient, create_wallet_app

    client = WalletClient("sandbox-wallet-client", secrets.token_urlsafe(24), (environment.redirect_uri,))
    base = environment.base_url
    settings = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "userinfo_endpoint": base + USERINFO_PATH,
        "token_endpoint_auth_method": "client_secret_post",
        "scopes": list(SCOPES),
        "default_scopes": ["profile"],
        "allowed_extra_params": ["auto_authorize"],
        "claims": {"subject": "id", "username": "username", "email": "email"},
    }
    return SandboxParts(
        app=create_wallet_app([client]),
        provider_type=GenericOAuth2Provider.type,
        provider_settings=settings,
        credentials={"client_id": client.client_id, "client_secret": client.client_secret},
    )


@hookimpl
def broker_gateway_register_sandboxes(register: Callable[[SandboxUpstream], None]) -> None:
    register(SandboxUpstream(provider_id="wallet", build=build_wallet))
