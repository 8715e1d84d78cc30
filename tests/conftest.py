"""Shared fixtures: the wallet simulator and a gateway serving it; the generic ones (a controllable clock,
real gateways on loopback, failures as callers see them) come from the testing kit, broker_gateway.testing.

Everything runs for real on 127.0.0.1: the gRPC server, the simulators (uvicorn) and, through
``support.oidc_provider``, oidc-provider as a genuine authorization server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from broker_gateway.config import ProviderConfig
from broker_gateway.store.crypto import generate_key
from broker_gateway.testing import (
    REDIRECT_URI,
    Failure,
    FakeClock,
    GatewayHarness,
    approve_with_shortcut,
    connect,
    expect_failure,
    failure_of,
    gateway_config,
    running_gateway,
    serve_asgi,
)
from broker_gateway.v1 import connection_pb2
from broker_gateway_oauth2.sandbox import AUTHORIZE_PATH, TOKEN_PATH, USERINFO_PATH, WalletClient, create_wallet_app

pytest_plugins = ["support.oidc_provider", "support.postgres", "support.redis"]

# The kit's generic helpers, named here too so that test modules keep importing them from conftest.
__all__ = ["REDIRECT_URI", "Failure", "FakeClock", "GatewayHarness", "expect_failure", "failure_of", "gateway_config", "running_gateway", "serve_asgi"]


@pytest.fixture
def clock(fake_clock: FakeClock) -> FakeClock:
    """The project's tests' name for the kit's ``fake_clock``."""
    return fake_clock


@dataclass
class Upstream:
    """A simulator served on loopback."""

    base_url: str
    app: Any
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def request_log(self) -> Any:
        return self.app.state.request_log


def wallet_provider_config(base_url: str, client: WalletClient, provider_id: str = "wallet", **overrides: Any) -> ProviderConfig:
    """A generic-oauth2 entry for the wallet simulator at ``base_url`` as ``client``."""
    settings = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "authorization_endpoint": base_url + AUTHORIZE_PATH,
        "token_endpoint": base_url + TOKEN_PATH,
        "userinfo_endpoint": base_url + USERINFO_PATH,
        "token_endpoint_auth_method": "client_secret_post",
        "scopes": ["profile", "balance"],
        "default_scopes": ["profile"],
        "allowed_extra_params": ["auto_authorize"],
        "claims": {"subject": "id", "username": "username", "email": "email"},
        **overrides,
    }
    return ProviderConfig(
        id=provider_id, type="generic-oauth2", redirect_uris=(REDIRECT_URI,), settings=settings, allow_insecure_http=True
    )


@dataclass
class Wallet(Upstream):
    client: WalletClient = field(default_factory=lambda: WalletClient("c", "s", ()))

    def provider_config(self, provider_id: str = "wallet", **overrides: Any) -> ProviderConfig:
        return wallet_provider_config(self.base_url, self.client, provider_id, **overrides)

    async def approve(self, authorization_url: str, username: str) -> dict[str, str]:
        """Approve through the simulator's ``approve=`` shortcut; the callback's query parameters."""
        return dict(await approve_with_shortcut(authorization_url, username))


@contextlib.asynccontextmanager
async def serve_wallet(clock: FakeClock, *, secret: str = "", basic_decoding: str = "form") -> AsyncIterator[Wallet]:
    """The wallet simulator on loopback, with one registered client whose secret is new each time
    (``secret`` is appended to it), decoding HTTP Basic credentials as ``basic_decoding`` says."""
    client = WalletClient("wallet-client", "wallet-secret-" + generate_key()[:12] + secret, (REDIRECT_URI,))
    app = create_wallet_app([client], clock=clock.epoch, basic_decoding=basic_decoding)
    async with serve_asgi(app) as (base_url, server, task):
        yield Wallet(base_url=base_url, app=app, server=server, task=task, client=client)


@pytest.fixture
async def wallet(clock: FakeClock) -> AsyncIterator[Wallet]:
    async with serve_wallet(clock) as upstream:
        yield upstream


@pytest.fixture
async def wallet_gateway(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(gateway_config(tmp_path, [wallet.provider_config()]), clock) as harness:
        yield harness


async def connect_wallet(
    harness: GatewayHarness, wallet: Wallet, username: str = "alice", **authorize: Any
) -> connection_pb2.Connection:
    """Authorize, approve and Exchange: a new ACTIVE connection to the wallet."""
    return await connect(harness.stub, "wallet", lambda url: wallet.approve(url, username), **authorize)
