"""Shared fixtures: a controllable clock, real gateways on loopback, and the wallet simulator.

Everything runs for real on 127.0.0.1: the gRPC server, the simulators (uvicorn) and, through
``support.oidc_provider``, oidc-provider as a genuine authorization server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import grpc
import httpx
import pytest
import uvicorn
from broker_gateway.app import Application, build_application
from broker_gateway.config import Config, GatewaySettings, ProviderConfig, ServerConfig
from broker_gateway.provider import TokenSet
from broker_gateway.sandbox.asgi import serve_asgi
from broker_gateway.server import RunningServer, start_server
from broker_gateway.store.base import StoredConnection
from broker_gateway.store.crypto import decode_key, generate_key
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway.v1 import connection_pb2
from broker_gateway_oauth2.sandbox import AUTHORIZE_PATH, TOKEN_PATH, USERINFO_PATH, WalletClient, create_wallet_app
from google.rpc import error_details_pb2
from grpc_status import rpc_status

pytest_plugins = ["support.oidc_provider", "support.postgres", "support.redis"]

REDIRECT_URI = "http://127.0.0.1:8765/callback"


class FakeClock:
    """A clock tests move by hand; the gateway reads ``now()``, simulators read ``epoch()``."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def epoch(self) -> float:
        return self.current.timestamp()

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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


@dataclass
class Wallet(Upstream):
    client: WalletClient = field(default_factory=lambda: WalletClient("c", "s", ()))

    def provider_config(self, provider_id: str = "wallet", **overrides: Any) -> ProviderConfig:
        settings = {
            "client_id": self.client.client_id,
            "client_secret": self.client.client_secret,
            "authorization_endpoint": self.base_url + AUTHORIZE_PATH,
            "token_endpoint": self.base_url + TOKEN_PATH,
            "userinfo_endpoint": self.base_url + USERINFO_PATH,
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

    async def approve(self, authorization_url: str, username: str) -> dict[str, str]:
        """Approve through the simulator's ``approve=`` shortcut; the callback's query parameters."""
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{authorization_url}&approve={quote(username)}")
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(REDIRECT_URI)
        return dict(parse_qsl(urlsplit(location).query))


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


def gateway_config(
    tmp_path: Path, providers: Sequence[ProviderConfig], *, reflection: bool = True, settings: GatewaySettings | None = None
) -> Config:
    return Config(
        server=ServerConfig(listen="127.0.0.1:0", reflection=reflection, shutdown_grace_seconds=1.0),
        store_path=str(tmp_path / "gateway.db"),
        encryption_keys=(("test-1", decode_key(generate_key())),),
        providers=tuple(providers),
        gateway=settings or GatewaySettings(),
    )


@dataclass
class GatewayHarness:
    """A running gateway and a client stub connected to it."""

    application: Application
    running: RunningServer
    channel: grpc.aio.Channel
    stub: api_grpc.BrokerGatewayStub

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    async def stored(self, connection_id: str, tenant: str = "default") -> StoredConnection:
        """The connection as the store holds it; the test fails when there is none."""
        connection = await self.application.gateway.store.get_connection(tenant, connection_id)
        assert connection is not None, "the store holds no such connection"
        return connection

    async def stored_tokens(self, connection_id: str) -> TokenSet:
        """The connection's tokens as stored, opened."""
        return self.application.gateway.vault.open_tokens(await self.stored(connection_id))


@contextlib.asynccontextmanager
async def running_gateway(config: Config, clock: FakeClock | None = None, **build: Any) -> AsyncIterator[GatewayHarness]:
    if clock is not None:
        build["clock"] = clock.now
    application = await build_application(config, **build)
    running = await start_server(application, "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield GatewayHarness(application, running, channel, api_grpc.BrokerGatewayStub(channel))
    finally:
        await channel.close()
        await running.stop(grace=0.5)


@pytest.fixture
async def wallet_gateway(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[GatewayHarness]:
    async with running_gateway(gateway_config(tmp_path, [wallet.provider_config()]), clock) as harness:
        yield harness


async def connect_wallet(
    harness: GatewayHarness, wallet: Wallet, username: str = "alice", **authorize: Any
) -> connection_pb2.Connection:
    """Authorize, approve and Exchange: a new ACTIVE connection to the wallet."""
    start = await harness.stub.Authorize(
        api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI, **authorize), timeout=10
    )
    callback = await wallet.approve(start.authorization_url, username)
    response = await harness.stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
    )
    return response.connection


@dataclass(frozen=True)
class Failure:
    """A failed call's status code and its single ErrorInfo."""

    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict[str, str]
    details: list[Any]


def failure_of(error: grpc.RpcError) -> Failure:
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no google.rpc.Status"
    infos = []
    details = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        details.append(detail)
    assert len(infos) == 1, f"expected exactly one ErrorInfo, got {len(infos)}"
    assert infos[0].domain == "broker-gateway"
    return Failure(error.code(), error.details() or "", infos[0].reason, dict(infos[0].metadata), details)


async def expect_failure(call: Any) -> Failure:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return failure_of(caught.value)
