"""A real gateway on a free loopback port, configured with the providers (and plugins) a test names,
and a client stub connected to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ..app import Application, build_application
from ..config import Config, GatewaySettings, ProviderConfig, ServerConfig
from ..provider import TokenSet
from ..server import RunningServer, start_server
from ..store.base import StoredConnection
from ..store.crypto import decode_key, generate_key
from ..v1 import broker_gateway_service_pb2 as api
from ..v1 import broker_gateway_service_pb2_grpc as api_grpc
from ..v1 import connection_pb2
from .clock import FakeClock

#: The redirect URI the kit's gateways and the built-in simulators' test clients register.
REDIRECT_URI = "http://127.0.0.1:8765/callback"

#: Approves an authorization URL upstream as a user would and returns the callback's query parameters.
Approve = Callable[[str], Awaitable[Mapping[str, str]]]


def gateway_config(
    data_dir: Path, providers: Sequence[ProviderConfig], *, reflection: bool = True, settings: GatewaySettings | None = None
) -> Config:
    """A gateway on SQLite under ``data_dir`` with a new encryption key, serving ``providers``."""
    return Config(
        server=ServerConfig(listen="127.0.0.1:0", reflection=reflection, shutdown_grace_seconds=1.0),
        store_path=str(data_dir / "gateway.db"),
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

    async def connect(
        self, provider: str, approve: Approve, *, redirect_uri: str = REDIRECT_URI, **authorize: Any
    ) -> connection_pb2.Connection:
        """Authorize, approve upstream and Exchange: a new ACTIVE connection."""
        return await connect(self.stub, provider, approve, redirect_uri=redirect_uri, **authorize)


async def connect(
    stub: api_grpc.BrokerGatewayStub, provider: str, approve: Approve, *, redirect_uri: str = REDIRECT_URI, **authorize: Any
) -> connection_pb2.Connection:
    """Authorize, approve upstream and Exchange through ``stub`` (any gateway's, over any channel):
    a new connection. ``authorize`` are more AuthorizeRequest fields (``scopes=[...]``, say)."""
    start = await stub.Authorize(api.AuthorizeRequest(provider=provider, redirect_uri=redirect_uri, **authorize), timeout=10)
    callback = dict(await approve(start.authorization_url))
    response = await stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
    )
    return response.connection


@contextlib.asynccontextmanager
async def running_gateway(config: Config, clock: FakeClock | None = None, **build: Any) -> AsyncIterator[GatewayHarness]:
    """Serve ``config`` on a free loopback port for the block. ``build`` goes to ``build_application``:
    ``extra_plugins=[...]`` loads plugin objects beside the installed entry points (a plugin under
    test need not be installed), ``tracer_provider=`` traces into the test's exporter."""
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
